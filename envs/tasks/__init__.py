"""Task registry: one entry per Gymnasium id, with a string entry point (modules load lazily on make).

Each task lives in its own module (`lift`, `reach`, `push`, `pick_place`, `stack`) and subclasses
`envs.tasks.base.TaskEnv`. `max_episode_steps` are at the default 10 Hz control and leave the scripted experts
(see `envs.experts`) roughly 2x their typical episode length.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskEntry:
    """A registered task: short name (also the `conf/env/<name>.yaml` file), entry point, episode limit."""

    name: str
    entry_point: str
    max_episode_steps: int


TASKS: dict[str, TaskEntry] = {
    "svla/Lift-v0": TaskEntry("lift", "envs.tasks.lift:LiftEnv", 60),
    "svla/Reach-v0": TaskEntry("reach", "envs.tasks.reach:ReachEnv", 60),
    "svla/Push-v0": TaskEntry("push", "envs.tasks.push:PushEnv", 100),
    "svla/PickPlace-v0": TaskEntry("pick_place", "envs.tasks.pick_place:PickPlaceEnv", 100),
    "svla/Stack-v0": TaskEntry("stack", "envs.tasks.stack:StackEnv", 100),
}
