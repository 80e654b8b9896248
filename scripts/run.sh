#!/usr/bin/env bash
# One command: set everything up, then run the main job on the embedded default.
# Until svla-pipeline lands, the main job is the most complete path that exists (see README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
bash scripts/main_job.sh "$@"
