"""Typed configuration of `svla-pipeline`; `conf/pipeline.yaml` mirrors it.

Design: the pipeline composes the stage configs the single-stage commands use (`SpatialDataConfig`,
`SFTConfig`, `RLConfig`, the spatial `EvalOptions`, `RecordConfig`, `TrainConfig`, `ActTrainConfig`,
`EvalConfig`), so every knob keeps its name, type, validation and documentation, plus a few pipeline-level
knobs. The pipeline owns the wiring between stages: paths (every output lives under `run_dir`), the
backbone each stage starts from, the env of each task, the checkpoint each evaluation loads, resume flags and
seeds. Those *managed* fields must stay at their defaults in the stage sections; setting one is an error
naming the pipeline-level knob to use instead (no silent pass-through).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any

from envs.record import RecordConfig
from pipeline.graph import FINAL, STAGES
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.config import SPLITS, SpatialDataConfig
from spatial_backbone.evaluation.evaluate import EvalOptions
from spatial_backbone.rl.config import RLConfig
from spatial_backbone.sft.config import SFTConfig
from vla.baselines.act import ActTrainConfig
from vla.config import HeadConfig
from vla.evaluate import EvalConfig
from vla.train_config import TrainConfig

SET_BY_PIPELINE = "<set by the pipeline>"
TASKS = ("lift", "reach", "push", "pick_place", "stack")  # conf/env/<name>.yaml

# section -> fields the pipeline sets (dotted paths) and the pipeline-level knob that decides each
MANAGED: dict[str, dict[str, str]] = {
    "spatial_data": {"out_dir": "run_dir", "overwrite": "force", "seed": "seed"},
    "sft": {
        "backbone": "backbone",
        "data.dir": "run_dir",
        "output_dir": "run_dir",
        "resume": "force",
        "seed": "seed",
    },
    "rl": {
        "backbone": "backbone",
        "data_dir": "run_dir",
        "output_dir": "run_dir",
        "resume": "force",
        "seed": "seed",
    },
    "record": {
        "env": "tasks / image_size",
        "root": "run_dir",
        "repo_id": "run_dir",
        "overwrite": "force",
        "seed": "seed",
    },
    "vla": {
        "backbone": "backbone",
        "head": "head",
        "dataset": "run_dir",
        "output_dir": "run_dir",
        "resume": "force",
        "seed": "seed",
    },
    "act": {
        "dataset": "run_dir",
        "output_dir": "run_dir",
        "resume": "force",
        "seed": "seed",
    },
    "eval": {"checkpoint": "run_dir", "env": "tasks / image_size", "output_dir": "run_dir"},
}


def _names(value: Any, what: str) -> list[str]:
    """`force=` / `skip=` values: a stage name, a comma-separated string, a list, or `all` (force only)."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if what == "force" and names == ["all"]:
        return list(STAGES)
    bad = [n for n in names if n not in STAGES]
    if bad:
        raise ValueError(f"{what}={value!r}: unknown stage(s) {bad}; stages: {', '.join(STAGES)}")
    return names


@dataclass
class PipelineConfig:
    """`svla-pipeline`: spatial data -> SFT -> RL -> spatial eval -> demonstrations -> tuned VLA, untuned VLA
    and ACT (its own, smaller budget) -> rollouts on the same held-out seeds -> report.

    run_dir: every stage writes `<run_dir>/<stage>/` (with its `stage.json`); the report is
        `<run_dir>/report.md` + `report.json` + `<run_dir>/report/*.png`.
    seed: the seed of every stage (spatial data, SFT, RL, recording, VLA and ACT training).
    tasks: the suite, names of `conf/env/<name>.yaml`; recorded, merged into one dataset, evaluated per task.
    image_size: camera resolution of every task (0 = each task's own, 128 px). 112 is the backbone's input
        size: the VLA sees the rendered pixels unresized, and ACT's ResNet costs ~25% less than at 128 px.
    force: stage name(s) to rerun even if cached (`force=sft`, `force=[sft,rl]`, `force=all`); everything
        downstream reruns too, because its inputs' hashes change.
    skip: stage name(s) not to run (and their consumers); the report says what is missing.
    backbone: the untuned starting backbone: SFT starts from it, the untuned VLA uses it, and the tuned VLA
        uses it with the RL output's weights (`name_or_path=<run_dir>/rl/backbone`).
    head: the action head of both VLAs.
    spatial_data / sft / rl: the spatial tuning stages (`svla-spatial-data`, `svla-sft`, `svla-rl`).
    spatial_eval: item selection and generation of `svla-spatial-eval`; spatial_eval_splits: the splits
        each backbone (untuned, SFT, RL) is scored on.
    record: demonstrations per task (`svla-record`: episodes, workers, video codec).
    vla: VLA training (`svla-train`), identical for the tuned and the untuned backbone.
    act: LeRobot's ACT peer baseline; it trains on the same dataset with the VLAs' seed and its own steps and
        batch size (default 200 steps at batch 8, a third of the VLAs' 4,800 samples): an ACT sample (ResNet18
        on two cameras) costs ~4-5x a VLA sample, and trained alike the ACT stage alone took 693 s, pushing
        the default run to 33 min (session 4); at 300 steps x 8 it still took 405 s (session 5).
    eval: rollouts (`svla-eval`): episodes per task, seeds (held out from the recording), videos; the three
        policies are rolled out on the same seeds.
    report_videos: MP4 rollouts linked per policy and task in the report.
    """

    run_dir: str = "outputs/pipeline/default"
    seed: int = 0
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    image_size: int = 112
    force: Any = field(default_factory=list)
    skip: Any = field(default_factory=list)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    spatial_data: SpatialDataConfig = field(default_factory=SpatialDataConfig)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(steps=400, max_minutes=0.0, save_every=100))
    rl: RLConfig = field(default_factory=lambda: RLConfig(max_steps=50, save_steps=25))
    spatial_eval: EvalOptions = field(default_factory=lambda: EvalOptions(max_items=280))
    spatial_eval_splits: list[str] = field(default_factory=lambda: ["test", "shifted"])
    record: RecordConfig = field(default_factory=lambda: RecordConfig(episodes=50))
    vla: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, save_every=100))
    act: ActTrainConfig = field(
        default_factory=lambda: ActTrainConfig(steps=200, batch_size=8, save_every=100)
    )
    eval: EvalConfig = field(
        default_factory=lambda: EvalConfig(checkpoint=SET_BY_PIPELINE, episodes=10, videos=1)
    )
    report_videos: int = 1

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ValueError("run_dir='' is empty: every output of the run goes under it")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be >= 0")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks={self.tasks!r} must be a non-empty list of distinct task names")
        from envs.hydra_utils import CONF_DIR

        bad = [t for t in self.tasks if not (CONF_DIR / "env" / f"{t}.yaml").is_file()]
        if bad:
            known = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))
            raise ValueError(f"tasks={self.tasks!r}: no conf/env/<name>.yaml for {bad}; known: {known}")
        if self.image_size < 0 or (self.image_size and self.image_size < 32):
            raise ValueError(f"image_size={self.image_size!r} must be 0 (each task's own) or >= 32")
        if not self.spatial_eval_splits or [s for s in self.spatial_eval_splits if s not in SPLITS]:
            raise ValueError(
                f"spatial_eval_splits={self.spatial_eval_splits!r}: each must be one of {SPLITS}"
            )
        if self.report_videos < 0:
            raise ValueError(f"report_videos={self.report_videos!r} must be >= 0")
        self.force = _names(self.force, "force")
        self.skip = _names(self.skip, "skip")
        if FINAL in self.skip:
            raise ValueError(f"skip={self.skip!r}: the {FINAL!r} stage always runs")
        self._check_managed()

    def _check_managed(self) -> None:
        defaults = {f.name: f.default_factory() for f in fields(self) if f.name in MANAGED}
        for section, paths in MANAGED.items():
            for path, knob in paths.items():
                get = operator.attrgetter(path)
                if get(getattr(self, section)) != get(defaults[section]):
                    raise ValueError(
                        f"{section}.{path}={get(getattr(self, section))!r} is set by the pipeline (from "
                        f"{knob}); remove that override and use `{knob.split(' ')[0]}=` instead"
                    )


SCHEMA_NAME = "pipeline_schema"


def register_schema() -> None:
    """Register `PipelineConfig` in hydra's ConfigStore: `conf/pipeline.yaml` lists it first in its defaults,
    so the composed config holds every field of every stage section and any of them can be overridden on the
    command line (`sft.optim.lr_language=1e-3`) while the YAML only spells out the pipeline's budgets."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=PipelineConfig)


register_schema()
