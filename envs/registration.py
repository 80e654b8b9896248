"""Registration of the `svla/*` Gymnasium ids and a `make` that explains unknown ids.

Design: ids and entry points come from the `envs.tasks.TASKS` registry (strings, so importing `envs` loads no
MuJoCo model); registration is idempotent and happens on `import envs`. `make` is `gymnasium.make` with an
error that lists the valid ids instead of Gymnasium's fuzzy suggestion.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.tasks import TASKS

TASK_IDS: tuple[str, ...] = tuple(TASKS)


def register_all() -> None:
    """Register every task id with Gymnasium (no-op for ids already registered)."""
    for task_id, entry in TASKS.items():
        if task_id not in gym.registry:
            gym.register(id=task_id, entry_point=entry.entry_point, max_episode_steps=entry.max_episode_steps)
    import envs.metaworld_env  # noqa: F401  registers metaworld/<task> ids (string entry points; cheap)


def make(task_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make(task_id, **kwargs)` for an `svla/*` id; an unknown id: ValueError listing the ids."""
    if task_id not in TASKS:
        raise ValueError(f"unknown task id {task_id!r}; registered ids: {', '.join(TASK_IDS)}")
    register_all()
    return gym.make(task_id, **kwargs)


def task_id_for(name: str) -> str:
    """The id of a task by its short name ("pick_place" -> "svla/PickPlace-v0")."""
    for task_id, entry in TASKS.items():
        if entry.name == name:
            return task_id
    raise ValueError(f"unknown task name {name!r}; valid: {[e.name for e in TASKS.values()]}")
