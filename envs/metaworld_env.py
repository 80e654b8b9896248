"""MetaWorld v3 behind the svla task contract, plus its scripted expert.

Design decisions:
- Same observation contract as our own tasks: `{"pixels": {cam: uint8 HxWx3}, "agent_pos": float32 (4,),
  "instruction": str}`, action float32 (4,) in [-1, 1] (EE delta xyz + gripper), `info["is_success"]` (from
  MetaWorld's `info["success"]`) and `info["instruction"]`. The time limit is gymnasium's `TimeLimit` (the
  `max_episode_steps` of `gym.make`); MetaWorld's own `max_path_length` is lifted so it never fires first.
- `agent_pos` = the first 4 entries of MetaWorld's 39-D observation: end-effector (x, y, z) in metres, world
  frame, and the gripper opening (finger distance / 0.1 m, clipped to [0, 1]; 1 = open). Object and goal
  entries are left out on purpose: a policy must find them in the images. Same choice as lerobot's
  `MetaworldEnv`.
- Not `gym.make("Meta-World/MT1")`: its `RandomTaskSelectWrapper` draws each reset's layout from 50 fixed
  variations with an RNG that `reset(seed=...)` does not touch (measured: the same seed gives different
  layouts), so seed-disjoint evaluation would not be layout-disjoint. Like lerobot, we build the MT1 class
  directly, unfreeze its random vector and seed it, so `reset(seed=s)` deterministically samples the layout
  from the full continuous range of the task.
- The Sawyer is built lazily on first `reset` (inside the vector-env worker, never in the parent process), and
  rendered by one `mujoco.Renderer` per env for all cameras, created after `model.vis.quality.shadowsize = 0`
  (the shadow map is allocated with the GL context, so the setting must precede the renderer; shadows cost
  ~2-3x). `shadows=True` keeps MetaWorld's 4096 shadow map, which is what lerobot's `MetaworldEnv` renders:
  with it, our frames equal lerobot's at the same seed (same layout and state, measured).
- Cameras: `front` = MetaWorld's `corner2`, moved to lerobot's position and rotated 180 degrees (MetaWorld's
  corner cameras render upside-down), so frames look like lerobot's MetaWorld datasets; `wrist` =
  `gripperPOV`; `top` = the same view as `front` under the name whose dataset key is `observation.image`
  (the key of lerobot's `MetaworldEnv`, which calls the camera `top`, and of the hub dataset
  `lerobot/metaworld_mt50`; see `envs.record.image_key`). Override with
  `camera_names={"front": "corner3", ...}`; the flip applies to MetaWorld's corner cameras.
- Multi-task suites (`metaworld/mt10`, `metaworld/mt50`, difficulty buckets) are config-level: see
  `envs.metaworld_suites`; this module builds one task.
- Instructions are lerobot's MetaWorld task descriptions (read from its `metaworld_config.json`, without
  importing lerobot's env package). Expert: `metaworld.policies.ENV_POLICY_MAP[name]()` on the raw 39-D
  observation, exposed as `info["expert_action"]` by `MetaWorldExpertWrapper` (same mechanism as
  `envs.experts.ExpertActionWrapper`).
- Ids `metaworld/<env_name>` (e.g. `metaworld/pick-place-v3`) are registered with a string entry point when
  this module is imported; `gym.make("envs.metaworld_env:metaworld/pick-place-v3")` works from a fresh
  process.
"""

from __future__ import annotations

import importlib.util
import json
import string
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

PREFIX = "metaworld/"
ENTRY_POINT = "envs.metaworld_env:MetaWorldEnv"
CONTROL_FPS = 80  # MuJoCo timestep 2.5 ms x frame_skip 5 = 12.5 ms per env step
DEFAULT_MAX_EPISODE_STEPS = 500  # MetaWorld's max_path_length
STATE_NAMES = ("hand_x", "hand_y", "hand_z", "gripper_opening")
ACTION_NAMES = ("delta_x", "delta_y", "delta_z", "gripper")
# `top` is the camera of lerobot's MetaworldEnv and of the hub dataset `lerobot/metaworld_mt50` (the same
# view as `front`); recorded under the key `observation.image` (see `envs.record.image_key`)
DEFAULT_CAMERAS: dict[str, str] = {"front": "corner2", "wrist": "gripperPOV", "top": "corner2"}
FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3"})  # render upside-down: rotate by 180 degrees
CORNER2_POS = (0.75, 0.075, 0.7)  # lerobot's corner2 placement: the whole table and arm in view
INSTRUCTION_CHARSET = frozenset(string.printable)


@cache
def lerobot_metaworld_config() -> dict[str, Any]:
    """lerobot's `envs/metaworld_config.json` (task descriptions, difficulty buckets), read as a file."""
    spec = importlib.util.find_spec("lerobot")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lerobot is required for MetaWorld task descriptions")
    path = Path(next(iter(spec.submodule_search_locations))) / "envs" / "metaworld_config.json"
    return json.loads(path.read_text())


@cache
def task_descriptions() -> dict[str, str]:
    """`{env_name: instruction}` for the 50 MetaWorld v3 tasks, from lerobot's MetaWorld integration."""
    return dict(lerobot_metaworld_config()["TASK_DESCRIPTIONS"])


def env_names() -> list[str]:
    """The MetaWorld v3 task names, e.g. `pick-place-v3`."""
    return sorted(task_descriptions())


def env_name_of(env_id: str) -> str:
    """`metaworld/pick-place-v3` -> `pick-place-v3`, with an error listing the valid names."""
    name = env_id.removeprefix(PREFIX)
    if name not in task_descriptions():
        valid = ", ".join(PREFIX + n for n in env_names())
        raise ValueError(f"unknown MetaWorld task {env_id!r}; valid: {valid}")
    return name


class MetaWorldEnv(gym.Env):
    """One MetaWorld v3 task (`env_name`) with svla observations, seeded layouts and multi-camera renders."""

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": CONTROL_FPS,
        "state_names": list(STATE_NAMES),
        "action_names": list(ACTION_NAMES),
        "robot_type": "sawyer",
    }

    def __init__(
        self,
        env_name: str,
        image_size: int = 224,
        cameras: tuple[str, ...] | list[str] = ("front", "wrist"),
        camera_names: dict[str, str] | None = None,
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        shadows: bool = False,
    ) -> None:
        super().__init__()
        self.env_name = env_name_of(env_name)
        self.instruction = task_descriptions()[self.env_name]
        mapping = {**DEFAULT_CAMERAS, **(camera_names or {})}
        unknown = [c for c in cameras if c not in mapping]
        if unknown or not cameras:
            raise ValueError(f"cameras {list(cameras)!r} invalid: each must be one of {sorted(mapping)}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size!r}")
        self.cameras = {cam: mapping[cam] for cam in cameras}  # our name -> MetaWorld camera
        self.image_size = int(image_size)
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.shadows = bool(shadows)
        img = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict({cam: img for cam in self.cameras}),
                "agent_pos": spaces.Box(-np.inf, np.inf, (len(STATE_NAMES),), np.float32),
                "instruction": spaces.Text(max_length=256, charset=INSTRUCTION_CHARSET),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (len(ACTION_NAMES),), np.float32)
        self._sim: Any = None  # the MetaWorld SawyerXYZEnv, built on first reset
        self._renderer: Any = None
        self._raw_obs: np.ndarray | None = None

    # -- construction ----------------------------------------------------------------------------------------
    def _ensure_sim(self) -> None:
        if self._sim is not None:
            return
        import metaworld
        import mujoco

        mt1 = metaworld.MT1(self.env_name, seed=0)
        sim = mt1.train_classes[self.env_name](render_mode=None)
        sim.set_task(mt1.train_tasks[0])  # sets the task's constants; the layout is re-sampled below
        sim._freeze_rand_vec = False
        sim.seeded_rand_vec = True  # layout drawn from sim.np_random, which reset() seeds
        sim.max_path_length = 10**9  # the TimeLimit wrapper owns the episode length
        model = sim.model
        if not self.shadows:  # before the renderer exists: the shadow map is allocated with it
            model.vis.quality.shadowsize = 0
        if "corner2" in self.cameras.values():
            model.cam_pos[model.camera("corner2").id] = CORNER2_POS
        for cam in self.cameras.values():
            model.camera(cam)  # raises KeyError naming a camera the model does not have
        self._renderer = mujoco.Renderer(model, self.image_size, self.image_size)
        self._sim = sim

    # -- gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._ensure_sim()
        layout_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self._sim.seed(layout_seed)
        raw, _ = self._sim.reset()
        self._raw_obs = raw
        return self._observation(raw), {"is_success": False, "instruction": self.instruction}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape must be {self.action_space.shape}, got {action.shape}")
        raw, reward, _, _, mw_info = self._sim.step(np.clip(action, -1.0, 1.0))
        self._raw_obs = raw
        success = bool(mw_info.get("success", 0.0))
        info = {k: float(v) for k, v in mw_info.items() if np.isscalar(v)}  # reward components
        info.update(is_success=success, instruction=self.instruction)
        terminated = success and self.terminate_on_success
        return self._observation(raw), float(reward), terminated, False, info

    def render(self) -> np.ndarray:
        """The first camera's frame (`front` by default)."""
        self._ensure_sim()
        return self._render(next(iter(self.cameras.values())))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def raw_observation(self) -> np.ndarray:
        """MetaWorld's last 39-D observation (what its scripted policies read)."""
        if self._raw_obs is None:
            raise RuntimeError("call reset() first")
        return self._raw_obs

    def _render(self, camera: str) -> np.ndarray:
        self._renderer.update_scene(self._sim.data, camera=camera)
        frame = self._renderer.render()  # [H, W, 3] uint8
        return np.ascontiguousarray(frame[::-1, ::-1]) if camera in FLIPPED_CAMERAS else frame.copy()

    def _observation(self, raw: np.ndarray) -> dict:
        return {
            "pixels": {cam: self._render(mw_cam) for cam, mw_cam in self.cameras.items()},
            "agent_pos": np.asarray(raw[: len(STATE_NAMES)], dtype=np.float32),
            "instruction": self.instruction,
        }


class MetaWorldExpertWrapper(gym.Wrapper):
    """Puts MetaWorld's scripted policy's next action into `info["expert_action"]` at reset and every step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[self.env.unwrapped.env_name]()

    def _expert_action(self) -> np.ndarray:
        with warnings.catch_warnings():  # MetaWorld's policies warn on every saturated gain
            warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
            action = self.policy.get_action(self.env.unwrapped.raw_observation)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)

    def reset(self, **kwargs: Any) -> tuple[dict, dict]:
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "expert_action": self._expert_action()}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "expert_action": self._expert_action()}


# MetaWorldEnv options allowed in `EnvConfig.kwargs`
ENV_OPTIONS = ("camera_names", "terminate_on_success", "shadows")


def validate_env_config(cfg: Any) -> None:
    """Check an `envs.tasks.config.EnvConfig`-shaped config whose id is `metaworld/<env_name>` or a suite
    (`metaworld/mt10`, see `envs.metaworld_suites`)."""
    from envs.metaworld_suites import is_suite_id

    if not is_suite_id(cfg.id):
        env_name_of(cfg.id)
    if float(cfg.control_hz) != CONTROL_FPS:
        raise ValueError(
            f"MetaWorld runs at a fixed {CONTROL_FPS} Hz; control_hz must be {CONTROL_FPS}, got "
            f"{cfg.control_hz!r}"
        )
    if cfg.camera_jitter:
        raise ValueError(f"MetaWorld has no camera_jitter; it must be 0, got {cfg.camera_jitter!r}")
    if not 16 <= cfg.image_size <= 1024:
        raise ValueError(f"image_size must be in [16, 1024], got {cfg.image_size!r}")
    if not 1 <= cfg.max_episode_steps <= 10_000:
        raise ValueError(f"max_episode_steps must be in [1, 10000], got {cfg.max_episode_steps!r}")
    unknown = sorted(set(cfg.kwargs) - set(ENV_OPTIONS))
    if unknown:
        raise ValueError(f"unknown MetaWorld option(s) {unknown!r} in kwargs; valid: {list(ENV_OPTIONS)}")
    valid_cams = {**DEFAULT_CAMERAS, **dict(cfg.kwargs.get("camera_names") or {})}
    bad = [c for c in cfg.cameras if c not in valid_cams]
    if bad or not cfg.cameras or len(set(cfg.cameras)) != len(cfg.cameras):
        raise ValueError(f"cameras must be distinct names of {sorted(valid_cams)}, got {list(cfg.cameras)!r}")


def make_from_config(cfg: Any, **extra: Any) -> gym.Env:
    """`gym.make` of a `metaworld/...` `EnvConfig` (TimeLimit = `cfg.max_episode_steps`), no expert."""
    from envs.metaworld_suites import is_suite_id, suite_tasks

    if is_suite_id(cfg.id):
        raise ValueError(
            f"{cfg.id!r} is a suite of {len(suite_tasks(cfg.id))} tasks, not one env; build its "
            "tasks from RecordEnvConfig.task_configs()"
        )
    kwargs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in dict(cfg.kwargs).items()}
    return gym.make(
        cfg.id,
        max_episode_steps=cfg.max_episode_steps,
        image_size=cfg.image_size,
        cameras=tuple(cfg.cameras),
        **kwargs,
        **extra,
    )


def register_metaworld_envs() -> list[str]:
    """Register `metaworld/<env_name>` for every MetaWorld v3 task (idempotent); returns the ids."""
    ids = []
    for name in env_names():
        env_id = PREFIX + name
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=ENTRY_POINT,
                kwargs={"env_name": name},
                max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
            )
        ids.append(env_id)
    return ids


METAWORLD_IDS = register_metaworld_envs()
