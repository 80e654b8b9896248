"""Typed configs of the manipulation tasks.

- `TaskConfig`: the keyword arguments every `svla/*` env accepts (`gym.make(id, **TaskConfig fields)`),
  validated in `__post_init__`.
- `EnvConfig`: what `conf/env/<name>.yaml` holds (the hydra `env` group): the registered id, the episode limit
  and the `TaskConfig` fields a recording/evaluation app passes on; `make()` builds the env from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CAMERAS = ("front", "wrist", "free")


@dataclass(frozen=True)
class TaskConfig:
    """Options of a task env.

    Attributes:
        image_size: height = width of every observation image, pixels (default 128).
        cameras: cameras rendered into `obs["pixels"]`, any of `CAMERAS`; empty = no rendering (headless
            evaluation of scripted experts, benchmarks).
        control_hz: control frequency; the physics (2 ms steps) is substepped in between.
        camera_jitter: per-episode perturbation of the front camera position, metres (0 = fixed camera).
        max_step: end-effector target motion per control step at |action| = 1, metres.
        n_distractors: inclusive (min, max) number of distractor objects (ignored by single-object tasks).
        render_size: image size of `render()` (`render_mode="rgb_array"`); None -> `image_size`.
    """

    image_size: int = 128
    cameras: tuple[str, ...] = ("front", "wrist")
    control_hz: float = 10.0
    camera_jitter: float = 0.0
    max_step: float = 0.025
    n_distractors: tuple[int, int] = (1, 2)
    render_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "n_distractors", tuple(self.n_distractors))
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [16, 1024], got {self.image_size!r}")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct names from {CAMERAS}, got {self.cameras!r}")
        if not 1.0 <= self.control_hz <= 100.0:
            raise ValueError(f"control_hz must be in [1, 100], got {self.control_hz!r}")
        if not 0.0 <= self.camera_jitter <= 0.1:
            raise ValueError(f"camera_jitter must be in [0, 0.1] metres, got {self.camera_jitter!r}")
        if not 0.0 < self.max_step <= 0.1:
            raise ValueError(f"max_step must be in (0, 0.1] metres, got {self.max_step!r}")
        lo, hi = self.n_distractors
        if not 0 <= lo <= hi <= 3:
            raise ValueError(
                f"n_distractors must be (min, max) with 0 <= min <= max <= 3, got {self.n_distractors!r}"
            )
        if self.render_size is not None and not 16 <= self.render_size <= 1024:
            raise ValueError(f"render_size must be None or in [16, 1024], got {self.render_size!r}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TaskConfig:
        """Like `TaskConfig(**kwargs)`, but an unknown key raises a ValueError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(f"unknown env option(s) {unknown!r}; valid options: {valid}")
        return cls(**kwargs)


@dataclass
class EnvConfig:
    """The `env` config group (`conf/env/<name>.yaml`).

    Attributes:
        id: registered Gymnasium id, e.g. "svla/Reach-v0" (see `envs.TASK_IDS`).
        image_size: observation image size, pixels.
        cameras: observation cameras.
        max_episode_steps: episode limit (TimeLimit), control steps.
        control_hz: control frequency (also the recording fps).
        camera_jitter: front camera jitter, metres.
        kwargs: any other `TaskConfig` field, passed to the env as is.
    """

    id: str = "svla/Lift-v0"
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    max_episode_steps: int = 60
    control_hz: float = 10.0
    camera_jitter: float = 0.0
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id.startswith("svla/"):
            raise ValueError(f"id must be an svla task id (svla/...), got {self.id!r}")
        if not 1 <= self.max_episode_steps <= 10_000:
            raise ValueError(f"max_episode_steps must be in [1, 10000], got {self.max_episode_steps!r}")
        clash = sorted(set(self.kwargs) & {"image_size", "cameras", "control_hz", "camera_jitter"})
        if clash:
            raise ValueError(f"kwargs {clash!r} duplicate top-level fields; set them at the top level")
        self.task_config()  # validates the task options now, not at make() time

    def task_config(self) -> TaskConfig:
        return TaskConfig.from_kwargs(
            image_size=self.image_size,
            cameras=tuple(self.cameras),
            control_hz=self.control_hz,
            camera_jitter=self.camera_jitter,
            **dict(self.kwargs),
        )

    def make_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `gym.make(self.id, **...)`, including `max_episode_steps`."""
        kw = dataclasses.asdict(self.task_config())
        return {**kw, "max_episode_steps": self.max_episode_steps}

    def make(self, **extra: Any) -> Any:
        """`envs.make(self.id, ...)` with this config (extra: e.g. render_mode)."""
        from envs.registration import make

        return make(self.id, **self.make_kwargs(), **extra)
