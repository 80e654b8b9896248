"""MetaWorld multi-task suites (MT10, MT50, lerobot's difficulty buckets) and their per-bucket scoring.

Design decisions:
- A suite is an env id `metaworld/<suite>` (`metaworld/mt10`, `metaworld/mt50`, one difficulty bucket such
  as `metaworld/easy`, or a comma-separated list of suites and tasks, as lerobot's `--env.task` takes it).
  `RecordEnvConfig.task_configs()` expands it through `expand_env_config` into one config per task
  (`metaworld/<task>`, every other field unchanged), so `svla-record` and `svla-eval` run the ordinary
  single-task code once per task; no second recorder or evaluator exists.
- MT10 is the standard Meta-World MT10 list (Yu et al. 2019), in its usual order, with v3 names. MT50 is all
  50 tasks of lerobot's `metaworld_config.json`. The difficulty buckets (`easy` 28, `medium` 11, `hard` 6,
  `very_hard` 5 tasks) are read from the same file's `DIFFICULTY_TO_TASKS`: they are the buckets SmolVLA's
  and lerobot's MetaWorld numbers are reported in. They are not copied here.
- Scoring (`vla.evaluate.summarize_suite`, grouped by `bucket_of`): a bucket's success rate pools the
  episodes of its tasks (with the protocol's equal episodes per task this equals the mean of the per-task
  rates), with a Wilson 95% interval over the pooled episodes. The suite's `average` is the unweighted mean of
  the bucket success rates of the buckets present in the suite: SmolVLA's "Average" (e.g. (82.5 + 41.8 + 45.0
  + 60.0) / 4 = 57.3 on MT50) is this mean of the four bucket means, not the mean over the 50 tasks, which is
  reported separately as `task_mean`. MT10 has no `very_hard` task, so its average is over three buckets.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from envs.metaworld_env import PREFIX, env_names, lerobot_metaworld_config

MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
BUCKETS: tuple[str, ...] = ("easy", "medium", "hard", "very_hard")  # lerobot's / SmolVLA's order


@cache
def difficulty_to_tasks() -> dict[str, tuple[str, ...]]:
    """`{bucket: tasks}` from lerobot's `metaworld_config.json` (`DIFFICULTY_TO_TASKS`)."""
    raw = lerobot_metaworld_config()["DIFFICULTY_TO_TASKS"]
    if tuple(raw) != BUCKETS:
        raise ValueError(f"lerobot's DIFFICULTY_TO_TASKS has buckets {list(raw)}, expected {list(BUCKETS)}")
    return {bucket: tuple(tasks) for bucket, tasks in raw.items()}


@cache
def suites() -> dict[str, tuple[str, ...]]:
    """Suite name -> task names: `mt10`, `mt50` and every difficulty bucket."""
    return {"mt10": MT10, "mt50": tuple(env_names()), **difficulty_to_tasks()}


def suite_tasks(name: str) -> list[str]:
    """Task names of a suite: `mt10`, `mt50`, a bucket (`easy`, ...), or a comma-separated list of suites and
    tasks like lerobot's `--env.task` (`easy,push-v3`; duplicates dropped). A `metaworld/` prefix is
    accepted."""
    tasks: list[str] = []
    for part in name.removeprefix(PREFIX).split(","):
        part = part.strip()
        if part in suites():
            tasks += suites()[part]
        elif part in env_names() and "," in name:
            tasks.append(part)
        else:
            raise ValueError(
                f"unknown MetaWorld suite {name!r} ({part!r}); valid: {sorted(suites())}, or a comma-"
                "separated list of suites and task names (e.g. 'reach-v3,push-v3')"
            )
    return list(dict.fromkeys(tasks))


def is_suite_id(env_id: str) -> bool:
    """`metaworld/mt10`, `metaworld/easy`, `metaworld/reach-v3,push-v3`, ... (not a single task id)."""
    if not env_id.startswith(PREFIX):
        return False
    try:
        suite_tasks(env_id)
    except ValueError:
        return False
    return True


def bucket_of(task: str) -> str:
    """The difficulty bucket of a task (`reach-v3` or `metaworld/reach-v3` -> `easy`)."""
    name = task.removeprefix(PREFIX)
    for bucket, tasks in difficulty_to_tasks().items():
        if name in tasks:
            return bucket
    raise ValueError(f"MetaWorld task {task!r} is in no difficulty bucket; valid tasks: {env_names()}")


def expand_env_config(cfg: Any) -> list[Any]:
    """One copy of `cfg` per task of its suite (id `metaworld/<task>`); `[cfg]` for a single-task id."""
    if not is_suite_id(cfg.id):
        return [cfg]
    return [dataclasses.replace(cfg, id=PREFIX + task) for task in suite_tasks(cfg.id)]
