"""What a stage is: a name, a function building its typed config from the pipeline config (and the records of
the stages before it), and a function running that config. Stage modules (`spatial.py`, `robot.py`,
`report.py`) define them; `runner.py` hashes the config, decides run / skip / resume and writes the record.

Design: stages call the same library functions as the single-stage commands (`generate`, `sft.train`,
`train_rl`, `evaluate_backbone`, `record`, `merge`, `vla.train.train`, `train_act`, `vla.evaluate.evaluate`),
never subprocesses, so configs stay typed end to end. `configure` is pure (it only derives configs), so a
rerun can compute every stage's key without running anything.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig


def derive[T](cfg: T, **changes: Any) -> T:
    """A validated copy of a stage config with `changes` (deep-copied first: `replace` re-runs
    `__post_init__`, which may write into shared nested configs such as TrainConfig.policy)."""
    return dataclasses.replace(copy.deepcopy(cfg), **changes)


@dataclass
class Context:
    """cfg: the pipeline config. run_dir: its run directory. records: the records (`stage.json`) of the stages
    finished so far, by name. resume: this run continues an interrupted one (same key)."""

    cfg: PipelineConfig
    run_dir: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    resume: bool = False

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def result(self, stage: str) -> dict[str, Any]:
        return self.records[stage]["result"]


# run(stage_config, context) -> (result summary stored in stage.json, output paths that must exist)
RunFn = Callable[[Any, Context], tuple[dict[str, Any], list[Path]]]


@dataclass(frozen=True)
class Stage:
    """name: a key of `pipeline.graph.GRAPH`. configure: the stage's typed config (a dataclass, or a list /
    dict of them). run: runs it in `context.dir(name)`. resumable: an interrupted run continues where it
    stopped (training checkpoints, finished tasks or splits) instead of starting over."""

    name: str
    configure: Callable[[Context], Any]
    run: RunFn
    resumable: bool = False
