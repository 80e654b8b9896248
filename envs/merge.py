"""Merge recorded datasets (e.g. one per task) into one multi-task LeRobot dataset, with lerobot's own
`aggregate_datasets`. The merged dataset is written atomically (staging directory, then rename) and keeps the
recording seeds of every source under `meta/svla_recording.json` (`sources`), so evaluation can still check
that its seeds are held out.

    svla-merge inputs=[outputs/datasets/lift,outputs/datasets/reach] root=outputs/datasets/suite
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from envs.hydra_utils import ConfigError, hydra_app
from envs.record import RECORDING_INFO, load_recording_info


@dataclass
class MergeConfig:
    inputs: list[str] = field(default_factory=list)
    root: str = "outputs/datasets/suite"
    repo_id: str = "local/suite"
    overwrite: bool = False

    def __post_init__(self):
        if len(self.inputs) < 1:
            raise ValueError("inputs is empty: list the dataset roots to merge, e.g. inputs=[a,b]")


def merge(cfg: MergeConfig) -> Path:
    from lerobot.datasets.aggregate import aggregate_datasets
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    missing = [p for p in cfg.inputs if not (Path(p) / "meta" / "info.json").is_file()]
    if missing:
        raise ConfigError(f"inputs {missing} are not LeRobot datasets (no meta/info.json)")
    root = Path(cfg.root).resolve()
    if root.exists() and any(root.iterdir()) and not cfg.overwrite:
        raise ConfigError(f"root {str(root)!r} exists; pass overwrite=true to replace it")
    staging = root.parent / f".{root.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    roots = [Path(p).resolve() for p in cfg.inputs]
    repo_ids = [LeRobotDatasetMetadata("local/src", root=r).repo_id for r in roots]
    try:
        aggregate_datasets(repo_ids, cfg.repo_id, roots=roots, aggr_root=staging)
        sources = []
        for r in roots:
            try:
                sources.append({"root": str(r), **load_recording_info(r)})
            except FileNotFoundError:
                sources.append({"root": str(r)})
        seeds = sorted({a["seed"] for s in sources for a in s.get("attempts", [])})
        info = {
            "format_version": 1,
            "merged": True,
            "sources": sources,
            "attempts": [{"seed": s} for s in seeds],
        }
        (staging / RECORDING_INFO).write_text(json.dumps(info, indent=1))
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def run(cfg: MergeConfig) -> None:
    out = merge(cfg)
    print(f"merged {len(cfg.inputs)} datasets into {out} (repo_id {cfg.repo_id})")


main = hydra_app("merge", MergeConfig)(run)

if __name__ == "__main__":
    main()
