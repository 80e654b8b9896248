"""Scripted-expert demonstrations into a LeRobot v3 dataset (the library behind `svla-record`).

Design decisions:
- Experts run in a `gymnasium.vector.AsyncVectorEnv` (`num_envs` workers, autoreset disabled). Every env is
  wrapped so that `info["expert_action"]` holds the expert's next action; the loop feeds it back as the
  action. Episodes end at the first step with `info["is_success"]` (kept) or at termination / the TimeLimit
  (dropped; `keep_truncated=true` keeps TimeLimit ends: with a short `env.max_episode_steps` that records the
  first steps of many scenes, cheap scene diversity for co-training grounding).
- Seeds: the k-th launched episode uses `seed + k`. Finished episodes are released in seed order, so the
  dataset holds exactly the first `episodes` successful seeds whatever `num_envs` is (idle workers start the
  next seeds speculatively; those are logged as `aborted`). Finished episodes are handed out between
  `step_async` and `step_wait`, so video encoding in the parent overlaps the workers' next step. Every
  launched seed is stored in `meta/svla_recording.json` (with the env config, git commit and versions), so
  evaluation can pick disjoint seeds; `load_recording_info(root)` reads it.
- Writing uses lerobot's own API: `LeRobotDataset.create(..., use_videos=True)`, `add_frame`, `save_episode`,
  `finalize()`. Frames are encoded while added (`streaming_encoding=True`: no PNG round trip, measured ~2x
  faster). A frame is (observation before the action, expert action, task string); the post-success
  observation is not a frame.
- Atomic: the dataset is written into a hidden sibling `.<root name>.staging-<pid>` and moved to `root` with
  `os.replace` only after `finalize()` and the recording info are written, so a killed run never leaves a
  loadable-but-corrupt dataset at `root`. Stale staging directories of dead processes are removed on the next
  run. An existing non-empty `root` is an error unless `overwrite=true`.
- Env families by id prefix (a registry, not if/elif): `svla/` (our tasks, `envs.tasks.config.EnvConfig` does
  the validation and `make`) and `metaworld/` (`envs.metaworld_env`). `RecordEnvConfig` is `EnvConfig` plus
  that dispatch, so both families share one hydra `env` group.
- Multi-task suites (a family's `expand`, e.g. `metaworld/mt10`): the tasks are recorded one after the other
  into ONE dataset (`episodes` successful episodes per task, each task from seed `seed`, one expert pool per
  task); each frame's `task` is that task's instruction. The recording info lists every attempt with its task
  and each task's expert success rate (`per_task`).
- Dataset keys of cameras: `image_key(cam)` = `observation.images.<cam>`, except the camera named
  `SINGLE_CAMERA` (`top`), recorded as `observation.image` like lerobot's single-camera envs and the hub
  dataset `lerobot/metaworld_mt50`.
- Workers start with the `spawn` context by default: the parent holds torch/lerobot threads (unsafe to fork)
  and no GL context ever lives in the parent. lerobot is imported lazily so workers never import it. Scripts
  calling `record` need the usual `if __name__ == "__main__":` guard (spawn re-imports the main module).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from envs.hydra_utils import ConfigError
from envs.manifest import git_state, package_versions
from envs.tasks.config import EnvConfig

log = logging.getLogger(__name__)

RECORDING_INFO = "meta/svla_recording.json"
MP_CONTEXTS = ("spawn", "forkserver", "fork")


# ------------------------------------------------------------------------------------------------------------
# Env families and config
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvFamily:
    """How to validate, build and drive one family of env ids. Callables are `module:attr` strings (lazy).

    Attributes:
        expert_wrapper: wrapper class putting the expert's next action in `info["expert_action"]`.
        registry_module: module whose import registers the family's Gymnasium ids.
        names_module: module exposing `STATE_NAMES` (and optionally `ACTION_NAMES`) for dataset feature names.
        validate: `fn(cfg)` raising ValueError on a bad config; None -> `EnvConfig.__post_init__`.
        make: `fn(cfg) -> gym.Env` (time-limited, no expert); None -> `EnvConfig.make`.
        privileged_names: module:attr of the names of `info["privileged_state"]` (ground truth recorded as
            `PRIVILEGED_KEY` for auxiliary losses), or None when the family has no such state.
        objects_names: the same for `info["privileged_objects"]` (every object's identity and where it is,
            recorded as `OBJECTS_KEY`), or None.
        expand: `fn(cfg) -> [cfg, ...]`: one config per task of a multi-task suite id (e.g.
            `metaworld/mt10`), `[cfg]` for a single task; None -> the family has no suites.
        bucket_of: `fn(task_id) -> str`: the difficulty bucket a suite's scores are grouped by; None -> none.
    """

    expert_wrapper: str
    registry_module: str
    names_module: str
    validate: str | None = None
    make: str | None = None
    privileged_names: str | None = None
    objects_names: str | None = None
    expand: str | None = None
    bucket_of: str | None = None


ENV_FAMILIES: dict[str, EnvFamily] = {
    "svla/": EnvFamily(
        expert_wrapper="envs.experts:ExpertActionWrapper",
        registry_module="envs",
        names_module="envs.robot",
        privileged_names="envs.tasks.base:PRIVILEGED_NAMES",
        objects_names="envs.tasks.base:OBJECT_NAMES",
    ),
    "metaworld/": EnvFamily(
        expert_wrapper="envs.metaworld_env:MetaWorldExpertWrapper",
        registry_module="envs.metaworld_env",
        names_module="envs.metaworld_env",
        validate="envs.metaworld_env:validate_env_config",
        make="envs.metaworld_env:make_from_config",
        expand="envs.metaworld_suites:expand_env_config",
        bucket_of="envs.metaworld_suites:bucket_of",
    ),
    "libero/": EnvFamily(  # lerobot's LiberoEnv; evaluation only (no scripted expert)
        expert_wrapper="envs.libero_env:NoExpertWrapper",
        registry_module="envs.libero_env",
        names_module="envs.libero_env",
        validate="envs.libero_env:validate_env_config",
        make="envs.libero_env:make_from_config",
        expand="envs.libero_env:expand_env_config",
    ),
}


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def env_family(env_id: str) -> EnvFamily:
    """The family of an env id, by prefix; an unknown prefix is an error listing the known ones."""
    for prefix, family in ENV_FAMILIES.items():
        if env_id.startswith(prefix):
            return family
    raise ConfigError(f"env.id {env_id!r} has no known family; ids start with one of {list(ENV_FAMILIES)}")


@dataclass
class RecordEnvConfig(EnvConfig):
    """`EnvConfig` (`conf/env/<name>.yaml`) accepting every family of `ENV_FAMILIES`, e.g. MetaWorld ids."""

    def __post_init__(self) -> None:
        family = env_family(self.id)
        if family.validate is None:
            super().__post_init__()
        else:
            _resolve(family.validate)(self)

    def make(self, **extra: Any) -> Any:
        family = env_family(self.id)
        return super().make(**extra) if family.make is None else _resolve(family.make)(self, **extra)

    def task_configs(self) -> list[RecordEnvConfig]:
        """One config per task: the tasks of a suite id (e.g. `metaworld/mt10`), else `[self]`."""
        family = env_family(self.id)
        return [self] if family.expand is None else list(_resolve(family.expand)(self))

    @property
    def is_suite(self) -> bool:
        return self.task_configs() != [self]

    def task_bucket(self, task_id: str) -> str:
        """The difficulty bucket a suite groups `task_id` in (the family's `bucket_of`), else "all"."""
        ref = env_family(self.id).bucket_of
        return "all" if ref is None else str(_resolve(ref)(task_id))


@dataclass
class RecordConfig:
    """`svla-record` (`conf/record.yaml`).

    Attributes:
        env: the task (hydra group `env`); `env.control_hz` is the dataset fps.
        episodes: number of successful episodes written (per task, for a multi-task suite env).
        root: dataset directory; None -> `outputs/datasets/<env id with / as _>`.
        repo_id: LeRobot repo id stored in the dataset; None -> `local/<env id with / as _>`.
        seed: seed of the first episode; the k-th launched episode uses `seed + k`.
        num_envs: parallel expert workers (processes).
        max_attempts: cap on launched episodes; None -> `2 * episodes + 10`. Reaching it is an error.
        overwrite: replace an existing `root` (else an existing root is an error).
        video_codec: lerobot `RGBEncoderConfig.vcodec` (`libsvtav1` = lerobot's AV1 default, `h264`, ...).
        video_crf: encoder quality (lower = better, bigger files); lerobot's default is 30.
        mp_context: multiprocessing start method of the workers (`spawn`, `forkserver`, `fork`).
        keep_truncated: also write episodes the TimeLimit (`env.max_episode_steps`) cut short, as expert
            prefixes; they count as written episodes (outcome `truncated`). Terminated failures stay dropped.
        progress: show a progress bar.
    """

    env: RecordEnvConfig = field(default_factory=RecordEnvConfig)
    episodes: int = 50
    root: str | None = None
    repo_id: str | None = None
    seed: int = 0
    num_envs: int = 2
    max_attempts: int | None = None
    overwrite: bool = False
    video_codec: str = "libsvtav1"
    video_crf: int = 30
    mp_context: str = "spawn"
    keep_truncated: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes!r}")
        if self.num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {self.num_envs!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")
        if self.max_attempts is not None and self.max_attempts < self.episodes:
            raise ConfigError(
                f"max_attempts must be None or >= episodes ({self.episodes}), got {self.max_attempts!r}"
            )
        if self.repo_id is not None and self.repo_id.count("/") != 1:
            raise ConfigError(f"repo_id must look like 'owner/name', got {self.repo_id!r}")
        if not 0 <= self.video_crf <= 63:
            raise ConfigError(f"video_crf must be in [0, 63], got {self.video_crf!r}")
        if self.mp_context not in MP_CONTEXTS:
            raise ConfigError(f"mp_context must be one of {MP_CONTEXTS}, got {self.mp_context!r}")
        if float(self.env.control_hz) != int(self.env.control_hz):
            raise ConfigError(f"env.control_hz (the dataset fps) must be whole, got {self.env.control_hz!r}")

    @property
    def slug(self) -> str:
        return self.env.id.replace("/", "_")

    @property
    def dataset_root(self) -> Path:
        return Path(self.root) if self.root else Path("outputs/datasets") / self.slug

    @property
    def dataset_repo_id(self) -> str:
        return self.repo_id or f"local/{self.slug}"

    @property
    def attempt_cap(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 2 * self.episodes + 10

    @property
    def fps(self) -> int:
        return int(self.env.control_hz)


SINGLE_CAMERA = "top"  # recorded as `observation.image`: lerobot's MetaworldEnv maps `pixels/top` there
# (not "image": LIBERO's camera `image` is `observation.images.image` in lerobot's LIBERO datasets)


def image_key(camera: str) -> str:
    """Dataset key of a camera: `observation.images.<cam>`, except `SINGLE_CAMERA` -> `observation.image`
    (the key of lerobot's MetaWorld env and of the hub dataset `lerobot/metaworld_mt50`)."""
    return "observation.image" if camera == SINGLE_CAMERA else f"observation.images.{camera}"


def camera_of_key(key: str) -> str | None:
    """Inverse of `image_key`; None for a key that is not a camera image."""
    if key == image_key(SINGLE_CAMERA):
        return SINGLE_CAMERA
    prefix = "observation.images."
    return key[len(prefix) :] if key.startswith(prefix) else None


MIN_EPISODE_FRAMES = 2
ENCODER_QUEUE_FRAMES = 100_000  # > any episode (~50 kB frames at 128 px; the queue holds one episode)
PRIVILEGED_KEY = "privileged.target_goal"  # ground truth for auxiliary losses; never a policy input
OBJECTS_KEY = "privileged.objects"  # every object's identity and image coordinates; never a policy input


class RecordingError(RuntimeError):
    """The expert could not produce the requested number of successful episodes."""


# ------------------------------------------------------------------------------------------------------------
# Expert rollouts
# ------------------------------------------------------------------------------------------------------------
def make_expert_env(env_cfg: RecordEnvConfig) -> gym.Env:
    """The time-limited env of `env_cfg`, wrapped so `info["expert_action"]` is the expert's next action."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    return _resolve(env_family(env_cfg.id).expert_wrapper)(env_cfg.make())


@dataclass
class Episode:
    """One finished expert rollout. Frame t = (images_t, state_t, action_t); `task` is its instruction."""

    seed: int
    success: bool = False
    truncated: bool = False  # ended by the TimeLimit, not by success or termination
    task: str = ""
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)  # cam -> T x [H, W, 3] uint8
    states: list[np.ndarray] = field(default_factory=list)  # T x [state_dim] float32
    actions: list[np.ndarray] = field(default_factory=list)  # T x [4] float32
    privileged: list[np.ndarray] = field(default_factory=list)  # T x [P] float32 (families that have it)
    objects: list[np.ndarray] = field(default_factory=list)  # T x [O] float32 (families that have it)

    def __len__(self) -> int:
        return len(self.actions)


class Driver(Protocol):
    """Chooses the executed actions when a learner, not the expert, drives the rollouts (DAgger,
    `vla.dagger`). Frames still record the expert's action for the state reached: the label."""

    def reset(self, slot: int) -> None:
        """Env `slot` starts a new episode."""

    def act(self, obs: dict, expert: np.ndarray, privileged: np.ndarray, active: list[int]) -> np.ndarray:
        """Executed actions [num_envs, A] for the batched `obs`; `expert` [num_envs, A] are the labels,
        `privileged` the envs' privileged state (width 0 if none); rows not in `active` step idle workers
        whose results are ignored."""
        ...

    def describe(self) -> dict[str, Any]:
        """What drove the rollouts, for the recording info."""
        ...


class ExpertPool:
    """`num_envs` expert workers; `episodes(first_seed, limit)` yields finished episodes in seed order.
    With a `driver`, the driver's actions are executed and the expert's are recorded (DAgger)."""

    def __init__(self, env_cfg: RecordEnvConfig, num_envs: int, mp_context: str = "spawn") -> None:
        self.env = gym.vector.AsyncVectorEnv(
            [partial(make_expert_env, env_cfg)] * num_envs,
            shared_memory=False,  # instruction strings need not fit a Text charset; images are small
            copy=False,  # we copy each kept frame ourselves
            context=mp_context,
            autoreset_mode=gym.vector.AutoresetMode.DISABLED,
        )
        self.cameras = list(self.env.single_observation_space["pixels"].keys())
        self.state_dim = int(self.env.single_observation_space["agent_pos"].shape[0])
        names = env_family(env_cfg.id).privileged_names
        self.privileged_names = list(_resolve(names)) if names else []
        names = env_family(env_cfg.id).objects_names
        self.objects_names = list(_resolve(names)) if names else []
        self.launched: list[int] = []
        self._stepping = False  # a step_async is in flight (the consumer stopped between async and wait)

    def close(self) -> None:
        if self._stepping:
            self.env.step_wait()
        self.env.close()

    def __enter__(self) -> ExpertPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def episodes(self, first_seed: int, limit: int, driver: Driver | None = None) -> Iterator[Episode]:
        """Run seeds `first_seed, first_seed + 1, ...` (at most `limit`); yield finished episodes in order."""
        n = self.env.num_envs
        seeds = iter(range(first_seed, first_seed + limit))
        slots: list[Episode | None] = [None] * n
        actions = np.zeros((n, *self.env.single_action_space.shape), np.float32)
        priv = np.zeros((n, len(self.privileged_names)), np.float32)  # info["privileged_state"] of obs_t
        objs = np.zeros((n, len(self.objects_names)), np.float32)  # info["privileged_objects"] of obs_t
        finished: dict[int, Episode] = {}
        next_yield = first_seed
        obs = self._launch(slots, seeds, actions, priv, objs, driver=driver)
        while any(ep is not None for ep in slots):
            # frame t of every running episode = (obs_t, expert action_t); then step all workers
            for i, ep in enumerate(slots):
                if ep is not None:
                    _append_frame(
                        ep,
                        obs,
                        i,
                        actions[i],
                        priv[i] if priv.shape[1] else None,
                        objs[i] if objs.shape[1] else None,
                    )
            executed = actions  # the frames above hold copies: a driver may not change the labels
            if driver is not None:  # the learner acts, the expert labels
                active = [i for i, ep in enumerate(slots) if ep is not None]
                executed = np.asarray(driver.act(obs, actions, priv, active), np.float32)
            self.env.step_async(executed)
            self._stepping = True
            while next_yield in finished:  # the consumer writes these while the workers step
                yield finished.pop(next_yield)
                next_yield += 1
            obs, _, terminated, truncated, infos = self.env.step_wait()
            self._stepping = False
            for i, ep in enumerate(slots):
                if ep is None:
                    continue
                actions[i] = _info_at(infos, "expert_action", i)
                if priv.shape[1]:
                    priv[i] = _info_at(infos, "privileged_state", i)
                if objs.shape[1]:
                    objs[i] = _info_at(infos, "privileged_objects", i)
                ep.success = bool(_info_at(infos, "is_success", i))
                ep.truncated = bool(truncated[i]) and not ep.success and not terminated[i]
                if ep.success or terminated[i] or truncated[i]:
                    finished[ep.seed], slots[i] = ep, None
                    actions[i] = 0.0  # an idle worker (no seed left) is stepped with a zero action
            if any(ep is None for ep in slots):
                obs = self._launch(slots, seeds, actions, priv, objs, obs, driver)
        while next_yield in finished:
            yield finished.pop(next_yield)
            next_yield += 1

    def _launch(
        self,
        slots: list[Episode | None],
        seeds: Iterator[int],
        actions: np.ndarray,
        priv: np.ndarray,
        objs: np.ndarray,
        obs: dict | None = None,
        driver: Driver | None = None,
    ) -> dict:
        """Reset every idle slot with the next seed, if any are left; returns the batched observation."""
        reset_seeds: list[int | None] = [None] * len(slots)
        for i, ep in enumerate(slots):
            seed = next(seeds, None) if ep is None else None
            if seed is not None:
                reset_seeds[i], slots[i] = seed, Episode(seed=seed)
                self.launched.append(seed)
                if driver is not None:
                    driver.reset(i)
        mask = np.array([s is not None for s in reset_seeds])
        if not mask.any():
            assert obs is not None
            return obs
        new_obs, infos = self.env.reset(seed=reset_seeds, options={"reset_mask": mask})
        for i in np.flatnonzero(mask):
            actions[i] = _info_at(infos, "expert_action", i)
            if priv.shape[1]:
                priv[i] = _info_at(infos, "privileged_state", i)
            if objs.shape[1]:
                objs[i] = _info_at(infos, "privileged_objects", i)
        return new_obs


def _info_at(infos: dict, key: str, i: int) -> Any:
    mask = infos.get(f"_{key}")
    if key in infos and (mask is None or mask[i]):
        return infos[key][i]
    raise KeyError(f"env {i} returned no info[{key!r}]; the env contract requires it (see ENV_FAMILIES)")


def _append_frame(
    ep: Episode,
    obs: dict,
    i: int,
    action: np.ndarray,
    privileged: np.ndarray | None = None,
    objects: np.ndarray | None = None,
) -> None:
    for cam, batch in obs["pixels"].items():
        ep.images.setdefault(cam, []).append(np.array(batch[i], dtype=np.uint8))
    ep.states.append(np.asarray(obs["agent_pos"][i], dtype=np.float32).copy())
    ep.actions.append(np.asarray(action, dtype=np.float32).copy())
    if privileged is not None:
        ep.privileged.append(np.asarray(privileged, dtype=np.float32).copy())
    if objects is not None:
        ep.objects.append(np.asarray(objects, dtype=np.float32).copy())
    if not ep.task:
        ep.task = str(obs["instruction"][i])


# ------------------------------------------------------------------------------------------------------------
# Dataset writing
# ------------------------------------------------------------------------------------------------------------
def dataset_features(
    env_cfg: RecordEnvConfig,
    cameras: list[str],
    state_dim: int,
    privileged_names: list[str] | None = None,
    objects_names: list[str] | None = None,
) -> dict[str, dict]:
    """LeRobot features: a video per camera, `observation.state`, `action` (plus the per-frame task), and
    `PRIVILEGED_KEY` / `OBJECTS_KEY` when the env family has privileged ground truth. Their keys do not start
    with `observation.`, so lerobot policies (e.g. ACT) never take them as inputs."""
    names = importlib.import_module(env_family(env_cfg.id).names_module)
    state_names = list(getattr(names, "STATE_NAMES", [])) or [f"state_{i}" for i in range(state_dim)]
    if len(state_names) != state_dim:
        state_names = [f"state_{i}" for i in range(state_dim)]
    action_names = list(getattr(names, "ACTION_NAMES", ("delta_x", "delta_y", "delta_z", "gripper")))
    size = env_cfg.image_size
    video = {"dtype": "video", "shape": (size, size, 3), "names": ["height", "width", "channels"]}
    features: dict[str, dict] = {image_key(cam): dict(video) for cam in cameras}
    features["observation.state"] = {"dtype": "float32", "shape": (state_dim,), "names": state_names}
    features["action"] = {"dtype": "float32", "shape": (len(action_names),), "names": action_names}
    if privileged_names:
        names_p = list(privileged_names)
        features[PRIVILEGED_KEY] = {"dtype": "float32", "shape": (len(names_p),), "names": names_p}
    if objects_names:
        names_o = list(objects_names)
        features[OBJECTS_KEY] = {"dtype": "float32", "shape": (len(names_o),), "names": names_o}
    return features


def _create_dataset(cfg: RecordConfig, root: Path, features: dict) -> Any:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset.create(
        repo_id=cfg.dataset_repo_id,
        fps=cfg.fps,
        features=features,
        root=root,
        robot_type=cfg.env.id.split("/")[0],
        use_videos=True,
        rgb_encoder=RGBEncoderConfig(vcodec=cfg.video_codec, crf=cfg.video_crf),
        streaming_encoding=True,
        # lerobot's streaming encoder DROPS frames when its queue is full (a loaded CPU): a queue longer than
        # any episode makes that impossible (episodes are written whole, after they finish)
        encoder_queue_maxsize=ENCODER_QUEUE_FRAMES,
    )


def _write_episode(dataset: Any, ep: Episode) -> None:
    for t in range(len(ep)):
        frame = {image_key(cam): frames[t] for cam, frames in ep.images.items()}
        frame.update({"observation.state": ep.states[t], "action": ep.actions[t], "task": ep.task})
        if ep.privileged:
            frame[PRIVILEGED_KEY] = ep.privileged[t]
        if ep.objects:
            frame[OBJECTS_KEY] = ep.objects[t]
        dataset.add_frame(frame)
    dataset.save_episode()


# ------------------------------------------------------------------------------------------------------------
# Atomic publication
# ------------------------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(root: Path) -> None:
    """Delete `.<name>.staging-<pid>` / `.<name>.old-<pid>` siblings left by killed runs."""
    if not root.parent.is_dir():
        return
    for path in root.parent.glob(f".{root.name}.*-*"):
        kind, _, pid = path.name.removeprefix(f".{root.name}.").partition("-")
        if kind in ("staging", "old") and pid.isdigit() and not _pid_alive(int(pid)):
            log.warning("removing %s left by a killed recording (pid %s)", path, pid)
            shutil.rmtree(path, ignore_errors=True)


def _occupied(root: Path) -> bool:
    """An existing file or non-empty directory (an empty directory, e.g. made by hand, is fine to fill)."""
    return root.exists() and (not root.is_dir() or any(root.iterdir()))


def _check_root(root: Path, overwrite: bool) -> None:
    if _occupied(root) and not overwrite:
        raise ConfigError(
            f"dataset root {str(root)!r} already exists; pass overwrite=true to replace it, "
            "or choose another root=..."
        )


def _publish(staging: Path, root: Path, overwrite: bool) -> None:
    """Move the finished dataset to `root` (atomic rename; an old root is swapped out if overwriting)."""
    _check_root(root, overwrite)
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if _occupied(root):
        os.replace(root, old)
    elif root.is_dir():
        root.rmdir()
    os.replace(staging, root)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# Provenance
# ------------------------------------------------------------------------------------------------------------
def load_recording_info(root: str | Path) -> dict[str, Any]:
    """The recording metadata (`meta/svla_recording.json`) of a dataset written by `record`.

    Keys: `seeds` (seed of episode i, in episode order), `episode_lengths`, `attempts` (every launched seed
    and its outcome: success / failure / aborted = still running when enough episodes were done), `seed_range`
    ([first, end) of the launched seeds: evaluation should use seeds outside it), `expert_success_rate`,
    `env`, `record`, `fps`, `repo_id`, `git`, `versions`, `created`, `seconds`.
    """
    path = Path(root) / RECORDING_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {str(root)!r} is not a dataset written by svla-record")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------------------
# The recording loop
# ------------------------------------------------------------------------------------------------------------
@dataclass
class RecordingSummary:
    root: Path
    repo_id: str
    episodes: int
    frames: int
    attempts: int
    seconds: float
    info: dict[str, Any]


def record(
    cfg: RecordConfig,
    on_episode: Callable[[int, Episode], None] | None = None,
    driver: Driver | None = None,
) -> RecordingSummary:
    """Record `cfg.episodes` successful expert episodes of `cfg.env` into a LeRobot dataset.

    The dataset goes to `cfg.dataset_root`. `on_episode(index, episode)` is called for each written episode
    (e.g. tests compare the rendered frames with the decoded dataset). With a `driver` (DAgger), the driver's
    actions are executed and the expert's recorded; `driver.describe()` goes into the recording info. Raises
    `RecordingError` if the expert fails too often (`cfg.attempt_cap`), and `ConfigError` for an unknown env
    id or an existing root without `overwrite`.
    """
    t0 = time.perf_counter()
    root = cfg.dataset_root.resolve()
    _check_root(root, cfg.overwrite)
    tasks = cfg.env.task_configs()  # one per task of a suite (e.g. metaworld/mt10), else [cfg.env]
    for task in tasks:
        _check_registered(task.id)
    _remove_stale_staging(root)
    staging = root.parent / f".{root.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    dataset = None
    outcomes: dict[str, dict[int, tuple[str, int]]] = {}  # task id -> seed -> (outcome, steps)
    launched: dict[str, list[int]] = {}
    try:
        for task in tasks:
            with ExpertPool(task, cfg.num_envs, cfg.mp_context) as pool:
                _check_fps(cfg, pool.env.metadata)
                if dataset is None:
                    features = dataset_features(
                        cfg.env, pool.cameras, pool.state_dim, pool.privileged_names, pool.objects_names
                    )
                    dataset = _create_dataset(cfg, staging, features)
                first_index = sum(_n_written(o) for o in outcomes.values())
                outcomes[task.id] = _collect(cfg, pool, dataset, on_episode, task.id, first_index, driver)
                launched[task.id] = list(pool.launched)
            done = outcomes[task.id]
            if _n_written(done) < cfg.episodes:
                raise RecordingError(
                    f"the {task.id} expert succeeded in {_n_written(done)} of {len(done)} episodes (seeds "
                    f"{cfg.seed}..{cfg.seed + len(done) - 1}); needed {cfg.episodes}. Raise max_attempts "
                    f"(now {cfg.attempt_cap}) or check the expert / env.max_episode_steps "
                    f"({task.max_episode_steps})."
                )
        dataset.finalize()
        info = _recording_info(cfg, outcomes, launched, time.perf_counter() - t0)
        info["driver"] = driver.describe() if driver is not None else None
        (staging / RECORDING_INFO).write_text(json.dumps(info, indent=2))
        _publish(staging, root, cfg.overwrite)
    except BaseException:
        if dataset is not None:
            with contextlib.suppress(Exception):
                dataset.finalize()  # stops lerobot's encoder threads before the staging dir goes away
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no-op once published
    frames = sum(info["episode_lengths"])
    episodes = len(info["seeds"])
    log.info("wrote %d episodes (%d frames) to %s in %.1f s", episodes, frames, root, info["seconds"])
    n_launched = sum(len(v) for v in launched.values())
    return RecordingSummary(root, cfg.dataset_repo_id, episodes, frames, n_launched, info["seconds"], info)


WRITTEN = ("success", "truncated")  # outcomes of the episodes a dataset holds


def _n_written(outcomes: dict[int, tuple[str, int]]) -> int:
    return sum(outcome in WRITTEN for outcome, _ in outcomes.values())


def _collect(
    cfg: RecordConfig,
    pool: ExpertPool,
    dataset: Any,
    on_episode: Callable[[int, Episode], None] | None,
    task_id: str,
    first_index: int = 0,
    driver: Driver | None = None,
) -> dict[int, tuple[str, int]]:
    """Write successful episodes (in seed order) until `cfg.episodes`; returns seed -> (outcome, steps).
    `on_episode` gets the dataset episode index (`first_index` + episodes written here)."""
    from tqdm import tqdm

    outcomes: dict[int, tuple[str, int]] = {}
    written = 0
    with tqdm(total=cfg.episodes, desc=f"record {task_id}", unit="ep", disable=not cfg.progress) as bar:
        for ep in pool.episodes(cfg.seed, cfg.attempt_cap, driver):
            # lerobot cannot compute statistics of a 1-frame episode; such a "success" also teaches nothing
            kept = ep.success or (cfg.keep_truncated and ep.truncated)
            ok = kept and len(ep) >= MIN_EPISODE_FRAMES
            outcome = ("success" if ep.success else "truncated") if ok else "too_short" if kept else "failure"
            outcomes[ep.seed] = (outcome, len(ep))
            if ok:
                _write_episode(dataset, ep)
                if on_episode is not None:
                    on_episode(first_index + written, ep)
                written += 1
                bar.update(1)
            bar.set_postfix(successes=written, attempts=len(outcomes))
            if written == cfg.episodes:
                break
    return outcomes


def _check_registered(env_id: str) -> None:
    importlib.import_module(env_family(env_id).registry_module)
    if env_id not in gym.registry:
        known = sorted(i for i in gym.registry if any(i.startswith(p) for p in ENV_FAMILIES))
        raise ConfigError(f"env.id {env_id!r} is not registered; registered ids: {', '.join(known)}")


def _check_fps(cfg: RecordConfig, env_metadata: dict) -> None:
    env_fps = env_metadata.get("render_fps")
    if env_fps is not None and float(env_fps) != float(cfg.fps):
        raise ConfigError(
            f"env.control_hz={cfg.env.control_hz!r} but {cfg.env.id} runs at {env_fps} Hz; they must agree"
        )


def _recording_info(
    cfg: RecordConfig,
    outcomes: dict[str, dict[int, tuple[str, int]]],
    launched: dict[str, list[int]],
    seconds: float,
) -> dict[str, Any]:
    """Flat fields (`seeds`, `episode_lengths`, `attempts`, ...) run over all tasks in dataset order (for one
    task: exactly that task's); `per_task` has each task's expert success rate."""
    written, attempts, per_task, n_success = [], [], {}, 0
    for task_id, task_outcomes in outcomes.items():
        ok = [(seed, steps) for seed, (outcome, steps) in task_outcomes.items() if outcome in WRITTEN]
        successes = sum(outcome == "success" for outcome, _ in task_outcomes.values())
        written, n_success = written + ok, n_success + successes
        for seed in launched[task_id]:
            outcome, steps = task_outcomes.get(seed, ("aborted", 0))
            attempts.append({"seed": seed, "outcome": outcome, "steps": steps, "task": task_id})
        per_task[task_id] = {
            "episodes": len(ok),
            "finished_attempts": len(task_outcomes),
            "expert_success_rate": successes / max(len(task_outcomes), 1),
            "mean_length": float(np.mean([steps for _, steps in ok])) if ok else 0.0,
        }
    n_finished = sum(len(o) for o in outcomes.values())
    all_launched = [seed for seeds in launched.values() for seed in seeds]
    return {
        "format_version": 1,
        "seeds": [seed for seed, _ in written],
        "episode_lengths": [steps for _, steps in written],
        "attempts": attempts,
        "seed_range": [cfg.seed, max(all_launched) + 1],
        # over the seed prefix that made the dataset; truncated prefixes are not successes
        "expert_success_rate": n_success / n_finished,
        "per_task": per_task,
        "fps": cfg.fps,
        "env": dataclasses.asdict(cfg.env),
        "record": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "env"},
        "repo_id": cfg.dataset_repo_id,
        "git": git_state(),
        "versions": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
    }
