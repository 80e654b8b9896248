#!/usr/bin/env bash
# GRPO on several seeds from one SFT backbone, then the weight-space soup of the runs (docs/rl.md, session 9):
# the measured recipe for issue 6's RL half on the tiny default (8 seeds, alpha 2; ~13 min per seed here).
#
#   bash scripts/rl_soup.sh SFT_BACKBONE DATA_DIR OUT_DIR [svla-rl overrides...]
#   SEEDS="0 1 2 3" ALPHA=1.5 bash scripts/rl_soup.sh outputs/sft/backbone outputs/spatial_data outputs/rl_soup
#
# Seed s trains into OUT_DIR/seed_s (a finished seed is skipped, an interrupted one resumes from its last
# checkpoint); the soup goes to OUT_DIR/soup (a backbone directory, with soup.json naming its inputs).
set -euo pipefail
if [ $# -lt 3 ]; then sed -n 2,9p "$0"; exit 2; fi
SFT=$(realpath "$1"); DATA=$(realpath "$2"); OUT=$(realpath -m "$3"); shift 3
SEEDS=${SEEDS:-"0 1 2 3 4 5 6 7"}
ALPHA=${ALPHA:-2.0}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
inputs=()
for s in $SEEDS; do
  run="$OUT/seed_$s"
  if [ ! -f "$run/backbone/config.json" ]; then
    .venv/bin/svla-rl backbone.name_or_path="$SFT" data_dir="$DATA" output_dir="$run" seed="$s" resume=true \
      max_steps=400 grpo.anchor_coef=100 \
      'data.skills=[distance,object_size,counting,video_count,travel_distance]' \
      hydra.run.dir="$run/hydra" "$@"
  fi
  inputs+=("$run/backbone")
done
list=$(IFS=,; echo "${inputs[*]}")
exec .venv/bin/svla-soup base="$SFT" "inputs=[$list]" alpha="$ALPHA" out_dir="$OUT/soup" overwrite=true \
  hydra.run.dir="$OUT/hydra_soup"
