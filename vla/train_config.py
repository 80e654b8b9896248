"""Typed configuration of `svla-train`; `conf/train.yaml` mirrors it."""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_backbone.config import BackboneConfig
from vla.augment import AugmentConfig
from vla.config import HeadConfig, PolicyConfig

FREEZE = ("none", "vision", "language", "backbone")
OBJECTIVES = ("act", "perceive")


@dataclass
class DatasetConfig:
    """root: local LeRobot dataset directory (what svla-record writes).
    repo_id: its id, or a hub id when online (root=null).
    episodes: optional subset of episode indices."""

    repo_id: str = "local/svla_Lift-v0"
    root: str | None = "outputs/datasets/svla_Lift-v0"
    episodes: list[int] | None = None


SCHEDULES = ("cosine", "constant")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule={schedule!r} is not a schedule; valid: {list(SCHEDULES)}")


@dataclass
class OptimConfig:
    """Per-module learning rates (vision tower, language model, head), AdamW, linear warmup then `schedule`
    (SCHEDULES: cosine decay to 0 at `steps`, or constant), clipping."""

    lr_head: float = 1e-3
    lr_language: float = 3e-4
    lr_vision: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    schedule: str = "cosine"
    grad_clip: float = 1.0
    grad_accum: int = 1

    def __post_init__(self):
        for name in ("lr_head", "lr_language", "lr_vision"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name}={getattr(self, name)} must be >= 0")
        check_schedule(self.schedule)
        if self.grad_accum < 1:
            raise ValueError(f"optim.grad_accum={self.grad_accum} must be >= 1")


@dataclass
class TrainConfig:
    """`backbone` and `head` are top-level (so `backbone=tiny_5m head=flow_matching` work on the command line)
    and are copied into `policy`, which holds the rest of the policy options. `augment`: train-time image
    augmentation (`vla.augment`, off by default). `init_from`: a spatial-vla checkpoint whose weights start
    this run (fine-tuning / curriculum: backbone and head weights from it, normalization from this dataset,
    optimizer and schedule fresh); null = the backbone factory's weights and a fresh head. `motion_batch`:
    image-free frames per step for the motion decoder (`head.kwargs.motion=true`, `vla.motion_data`);
    0 = off. `objective`: `act` trains the policy; `perceive` is a perception pre-training stage that
    trains only the backbone and the object probe on `privileged.objects` (which object each image token
    holds: shape, colour, size, relations; `vla.object_labels`), whose checkpoint's `backbone/` directory
    then starts an `act` run (`backbone.name_or_path=<ckpt>/backbone`)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    freeze: str = "none"
    steps: int = 1000
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0
    output_dir: str = "outputs/train/default"
    save_every: int = 250
    log_every: int = 10
    resume: bool = False
    init_from: str | None = None
    motion_batch: int = 0
    objective: str = "act"
    progress: bool = True

    def __post_init__(self):
        self.policy.backbone, self.policy.head = self.backbone, self.head
        if self.freeze not in FREEZE:
            raise ValueError(f"freeze={self.freeze!r} is not one of {FREEZE}")
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r} is not one of {OBJECTIVES}")
        if self.objective == "perceive":
            self._check_perceive()
        if self.motion_batch < 0:
            raise ValueError(f"motion_batch={self.motion_batch} must be >= 0 (0 = no image-free frames)")
        if self.motion_batch and not self.head.kwargs.get("motion", False):
            raise ValueError(
                f"motion_batch={self.motion_batch} trains the motion decoder, but head {self.head.name!r} "
                f"has none: set head=l1_chunk head.kwargs.motion=true, or motion_batch=0"
            )

    def _check_perceive(self) -> None:
        """`objective=perceive` trains the object probe alone: it needs the probe, and nothing that only
        the action losses would train."""
        fix = "set head.kwargs.object_attrs=1.0 (a head with the object probe), or objective=act"
        if self.head.name == "action_tokens":
            raise ValueError(
                f"objective=perceive needs a head with the object probe, not {self.head.name!r}: {fix}"
            )
        if not self.head.kwargs.get("object_attrs", 0):
            raise ValueError(
                f"objective=perceive trains the object probe but head.kwargs.object_attrs="
                f"{self.head.kwargs.get('object_attrs', 0)!r}: {fix}"
            )
        if self.motion_batch:
            raise ValueError(
                f"objective=perceive trains no action decoder but motion_batch={self.motion_batch}: set "
                "motion_batch=0 (add the motion decoder in the act stage)"
            )
