"""`svla-pipeline`: hydra entry point over `conf/pipeline.yaml` (library: `pipeline.runner.run_pipeline`).

    svla-pipeline                                  # the embedded default into outputs/pipeline/default
    svla-pipeline debug=pipeline_fast run_dir=/tmp/p   # tiny and quick (~1-2 min)
    svla-pipeline force=vla_untuned                # rerun one stage and everything downstream of it
    svla-pipeline backbone=tiny_5m head=flow_matching run_dir=outputs/pipeline/tiny5m_flow
    svla-pipeline skip=act                         # without the ACT baseline

Rerunning the same command skips finished stages and resumes an interrupted one (stage.json per stage).

This module imports nothing heavy at import time: the recording and rollout workers are spawned processes,
which re-import the main module, and a main module importing the whole config schema (torch, transformers,
lerobot) added ~10 s to every worker start.
"""

from __future__ import annotations

import logging
import os


def run(cfg) -> dict:
    """Run the pipeline on a composed `PipelineConfig`; returns the stage records."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from pipeline.runner import run_pipeline

    records, _ = run_pipeline(cfg)
    return records


def main() -> None:
    for key, value in {
        "MUJOCO_GL": "egl",  # before anything imports mujoco; inherited by spawned workers
        "SVT_LOG": "1",  # SVT-AV1: errors only
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # lerobot's per-episode "Map" bars
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)
    from envs.hydra_utils import hydra_app
    from pipeline.config import PipelineConfig

    hydra_app("pipeline", PipelineConfig)(run)()


if __name__ == "__main__":
    main()
