#!/usr/bin/env bash
# The most complete path that exists until svla-pipeline lands (issue 7): spatial data + untuned spatial eval,
# scripted demonstrations of the whole suite -> one LeRobot dataset -> a VLA from the untuned tiny backbone
# -> rollouts on held-out seeds, per task. Outputs in outputs/main/. Extra arguments go to svla-train.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
OUT=outputs/main
TASKS=(lift reach push pick_place stack)
EPISODES=${SVLA_EPISODES:-50}
STEPS=${SVLA_STEPS:-2000}
EVAL_EPISODES=${SVLA_EVAL_EPISODES:-50}
FAST=()  # SVLA_FAST=1: every stage with its debug preset (a smoke run of a few minutes)
if [ "${SVLA_FAST:-0}" = 1 ]; then EPISODES=2; STEPS=6; EVAL_EPISODES=2; FAST=(1); fi
bin=.venv/bin
fast() { [ ${#FAST[@]} -gt 0 ] && echo "debug=$1_fast" || true; }

echo "== spatial data and the untuned backbone's spatial scores"
$bin/svla-spatial-data out_dir=$OUT/spatial_data overwrite=true $(fast spatial_data)
$bin/svla-spatial-eval data_dir=$OUT/spatial_data split=test out_dir=$OUT/spatial_eval_untuned $(fast spatial_eval)

echo "== demonstrations: $EPISODES per task"
inputs=()
for t in "${TASKS[@]}"; do
  $bin/svla-record env=$t episodes=$EPISODES root=$OUT/datasets/$t repo_id=local/$t overwrite=true
  inputs+=("$OUT/datasets/$t")
done
$bin/svla-merge "inputs=[$(IFS=,; echo "${inputs[*]}")]" root=$OUT/datasets/suite repo_id=local/suite overwrite=true

echo "== VLA training ($STEPS steps) and evaluation"
$bin/svla-train dataset.root=$OUT/datasets/suite dataset.repo_id=local/suite $(fast train) steps=$STEPS \
  output_dir=$OUT/vla "$@"
ckpt=$OUT/vla/checkpoints/$(cat $OUT/vla/checkpoints/last)
for t in "${TASKS[@]}"; do
  $bin/svla-eval checkpoint=$ckpt env=$t episodes=$EVAL_EPISODES output_dir=$OUT/eval/$t
done
.venv/bin/python - <<'PY'
import json, pathlib
rows = [json.loads(p.read_text()) for p in sorted(pathlib.Path("outputs/main/eval").glob("*/results.json"))]
print("task            success   Wilson 95%")
for r in rows:
    print(f"{r['task']:<15} {r['success_rate']:>6.1%}   [{r['wilson95'][0]:.1%}, {r['wilson95'][1]:.1%}]")
PY
