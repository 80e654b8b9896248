#!/usr/bin/env bash
# One command: set everything up, then run the main job on the embedded default.
# The main job is svla-pipeline (scripts/main_job.sh): every stage, the ablation, ACT and the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
bash scripts/main_job.sh "$@"
