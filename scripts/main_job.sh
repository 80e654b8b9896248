#!/usr/bin/env bash
# The main job: svla-pipeline on the embedded default (issue 7): spatial data -> SFT -> RL -> spatial eval ->
# demonstrations of the five tasks -> a VLA from the tuned backbone, a VLA from the untuned one and LeRobot's
# ACT, trained alike -> rollouts on the same held-out seeds -> report. Outputs and the report (report.md,
# report.json, PNG plots) in outputs/pipeline/default; rerunning skips finished stages and resumes an
# interrupted one. Arguments go to svla-pipeline (e.g. `force=vla_untuned`, `head=flow_matching run_dir=...`);
# SVLA_FAST=1 runs the tiny debug preset (about a minute) into outputs/pipeline/fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
FAST=()
if [ "${SVLA_FAST:-0}" = 1 ]; then FAST=(debug=pipeline_fast); fi
exec .venv/bin/svla-pipeline "${FAST[@]}" "$@"
