"""The base Gymnasium env of every tabletop task.

Design decisions:
- A task is two functions over ground truth: `sample_episode(rng) -> Episode` (a `SceneSpec`, the instruction,
  and the names/goal the instruction refers to) and `evaluate() -> (reward components, success)`. The base
  class does everything else: building the `Scene` each reset, control, substepping, observations, safety
  checks.
- `info["relation"]`: how the instruction names the target (a key of `language.RELATIONS`, "color", or
  "only" for a lone object).
  `info["touched"]` / `info["nearest"]`: the role ("target", "reference", "other"; "" = nothing touched) of
  the object the finger pads touch and of the movable object nearest the gripper: what the rollout
  diagnostics of `svla-eval` count (did a failed episode go for the named object or a wrong one?).
- Randomness only from `self.np_random` (seeded by `reset(seed=...)`); rendering and physics are
  deterministic, so the same seed gives identical observations.
- Observation (a contract with the recorder and the policies): `{"pixels": {cam: uint8 (H, W, 3) for cam in
  cameras}, "agent_pos": float32 (9,), "instruction": str}` ("pixels" is absent when `cameras=()`: headless
  runs of the experts), `agent_pos` layout in `envs.robot.STATE_NAMES`. Action: float32 (4,) in [-1, 1]
  (`envs.robot`); values outside are clipped, a wrong shape or a non-finite value raises ValueError.
- `info["privileged_state"]` (float32 (14,), `PRIVILEGED_NAMES`): the target object's current position and the
  goal point (the task's goal, else the reference object, else the target's start), world frame, then where
  both appear in the front and wrist images ((u, v) scaled to [-1, 1] over the image; `OUT_OF_VIEW` when
  behind the camera). Ground truth for auxiliary training losses only: a policy must never read it at rollout.
- `info["privileged_objects"]` (float32 (`OBJECT_SLOTS` * 12,), `OBJECT_NAMES`): every object of the scene,
  one slot each in scene order (unused slots all zero): present, shape / colour / size index (into `SHAPES`,
  `COLORS`, `SIZES`), position now, distance to the front camera, and its (u, v) in the front and wrist
  images. Ground truth for object-centric auxiliary losses (`vla.object_labels`); never a policy input.
- `reward = sum(info["reward_components"].values())`; `info["is_success"]` is the task predicate at this step;
  with `terminate_on_success` the episode ends on success. Time limits come from `TimeLimit` (registration).
- An unstable simulation (non-finite qpos/qvel, |qvel| > 1e3, or a MuJoCo bad-qacc/qvel/qpos warning during
  the step) ends the episode with `terminated=True` and `info["termination_reason"]`, instead of crashing.
  So does an object that fell off the table (centre below `OFF_TABLE_Z`; it falls for ever, there is no
  floor): the episode cannot succeed any more, and its positions would poison recorded ground truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from envs.robot import ACTION_DIM, STATE_DIM, Robot, RobotConfig
from envs.scene import (
    COLORS,
    DEFAULT_FRONT_EYE,
    DEFAULT_FRONT_TARGET,
    SHAPES,
    SIZES,
    Scene,
    SceneSpec,
    jitter_camera,
)
from envs.tasks.config import TaskConfig
from envs.tasks.language import CHARSET, MAX_INSTRUCTION_LENGTH
from envs.tasks.sampling import retry

PHYSICS_TIMESTEP = 0.002
MAX_QVEL = 1e3
OFF_TABLE_Z = -0.05  # m: an object centre below this has fallen off the table (top at z = 0)
STATE_BOUND = 10.0  # |agent_pos| entries are clipped to this (metres, m/s; real values stay well inside)
PRIVILEGED_POINTS, PRIVILEGED_CAMERAS = ("target", "goal"), ("front", "wrist")
PRIVILEGED_NAMES = tuple(f"{p}_{a}" for p in PRIVILEGED_POINTS for a in "xyz") + tuple(
    f"{p}_{c}_{a}" for p in PRIVILEGED_POINTS for c in PRIVILEGED_CAMERAS for a in "uv"
)
OUT_OF_VIEW = 2.0  # image coordinate of a point behind the camera (in-view points lie in [-1, 1])
OBJECT_SLOTS = 10  # > the most objects any task places (PickPlace: 3 + 2 receptacles + 3 distractors)
OBJECT_FIELDS = ("present", "shape", "color", "size", "x", "y", "z", "cam_dist") + tuple(
    f"{c}_{a}" for c in PRIVILEGED_CAMERAS for a in "uv"
)
OBJECT_NAMES = tuple(f"obj{k}_{f}" for k in range(OBJECT_SLOTS) for f in OBJECT_FIELDS)


def privileged_uv_index(point: str, camera: str) -> int:
    """Column of `<point>_<camera>_u` in the privileged state (`_v` follows it)."""
    return PRIVILEGED_NAMES.index(f"{point}_{camera}_u")


def object_uv_index(slot: int, camera: str) -> int:
    """Column of `obj<slot>_<camera>_u` in the objects state (`_v` follows it)."""
    return slot * len(OBJECT_FIELDS) + OBJECT_FIELDS.index(f"{camera}_u")


_BAD_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
)


@dataclass(frozen=True)
class Episode:
    """What an episode is about (ground truth for rewards and scripted experts).

    Attributes:
        spec: the scene.
        instruction: the language instruction.
        target: name of the object the instruction is about (the one to touch / push / move / lift).
        reference: name of the second object (anchor, receptacle, base), if any.
        goal: a goal point in world coordinates (push / place / stack), if any.
        relation: the relation used to name the target (a key of `language.RELATIONS`, "color", or "only"
            for a lone object).
        extra: task-specific details (e.g. the push direction).
    """

    spec: SceneSpec
    instruction: str
    target: str
    reference: str | None = None
    goal: tuple[float, float, float] | None = None
    relation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class TaskEnv(gym.Env):
    """Base tabletop task. Subclasses set `task_name` and implement `sample_episode` and `evaluate`."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}
    task_name: ClassVar[str] = ""
    terminate_on_success: ClassVar[bool] = True

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.config = TaskConfig.from_kwargs(**kwargs)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.n_substeps = max(1, round(1.0 / (self.config.control_hz * PHYSICS_TIMESTEP)))
        s = self.config.image_size
        spaces: dict[str, gym.Space] = {}
        if self.config.cameras:  # no cameras: headless (no "pixels" key, nothing rendered)
            spaces["pixels"] = gym.spaces.Dict(
                {cam: gym.spaces.Box(0, 255, (s, s, 3), np.uint8) for cam in self.config.cameras}
            )
        spaces["agent_pos"] = gym.spaces.Box(-STATE_BOUND, STATE_BOUND, (STATE_DIM,), np.float32)
        spaces["instruction"] = gym.spaces.Text(max_length=MAX_INSTRUCTION_LENGTH, charset=CHARSET)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.robot_config = RobotConfig(
            max_step=self.config.max_step, max_lag=max(0.05, 2 * self.config.max_step)
        )
        self.scene: Scene | None = None
        self.robot: Robot | None = None
        self.episode: Episode | None = None
        self._frames: dict[str, np.ndarray] = {}

    # -- to implement ----------------------------------------------------------------------------------------
    def sample_episode(self, rng: np.random.Generator) -> Episode:
        """Draw layouts with `_draw` until one is valid (unambiguous, solvable, not already solved)."""
        return retry(lambda: self._draw(rng), self.task_name)

    def _draw(self, rng: np.random.Generator) -> Episode | None:
        """One layout attempt; None rejects it. Tasks implement this (or override `sample_episode`)."""
        raise NotImplementedError

    def evaluate(self) -> tuple[dict[str, float], bool]:
        """Reward components (summed into the reward) and the success predicate at the current state."""
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------------------
    def front_camera(self, rng: np.random.Generator) -> tuple[tuple, tuple]:
        """Front camera (eye, target) for a new episode: jittered with `camera_jitter` > 0."""
        if self.config.camera_jitter > 0:
            return jitter_camera(rng, self.config.camera_jitter)
        return DEFAULT_FRONT_EYE, DEFAULT_FRONT_TARGET

    def object_pos(self, name: str) -> np.ndarray:
        assert self.scene is not None
        return self.scene.object_pos(name)

    def touching(self, name: str) -> tuple[bool, bool]:
        """Whether the (left, right) finger pads touch object `name`."""
        assert self.scene is not None and self.robot is not None
        return self.robot.touching(self.scene.object_geoms[self.scene.object_index(name)])

    # -- gym API -----------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        rng = self.np_random
        self.episode = self.sample_episode(rng)
        spec = dataclasses.replace(self.episode.spec, image_size=self.config.image_size)
        self.scene = Scene(spec, with_robot=True, timestep=PHYSICS_TIMESTEP, recycle=self.scene)
        self.robot = Robot(self.scene.model, self.scene.data, self.robot_config)
        home = np.asarray(self.robot_config.home) + rng.uniform([-0.04, -0.03, -0.02], [0.04, 0.03, 0.02])
        self.robot.reset(home)
        mujoco.mj_forward(self.scene.model, self.scene.data)
        components, success = self.evaluate()
        return self._observation(), self._info(success, components)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None or self.robot is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        model, data = self.scene.model, self.scene.data
        warnings_before = sum(data.warning[w].number for w in _BAD_WARNINGS)
        self.robot.apply_action(action)
        for _ in range(self.n_substeps):
            mujoco.mj_step(model, data)
        reason = self._instability(warnings_before)
        if reason is not None:
            mujoco.mj_resetData(model, data)
            mujoco.mj_forward(model, data)
            info = self._info(False)
            info["termination_reason"] = reason
            info["reward_components"] = {}
            return self._observation(), 0.0, True, False, info
        mujoco.mj_forward(model, data)
        components, success = self.evaluate()
        info = self._info(success, components)
        terminated = bool(success and self.terminate_on_success)
        if terminated:
            info["termination_reason"] = "success"
        fallen = [o.name for o in self.scene.spec.objects if self.object_pos(o.name)[2] < OFF_TABLE_Z]
        if fallen and not terminated:
            terminated = True
            info["termination_reason"] = f"object_off_table: {', '.join(fallen)}"
        return self._observation(), float(sum(components.values())), terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self.scene is None:
            raise RuntimeError("call reset() before render()")
        size = self.config.render_size or self.config.image_size
        if size == self.config.image_size and "front" in self._frames:
            return self._frames["front"].copy()
        return self.scene.render_rgb("front", size, size)

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
            self.scene = None
        super().close()

    # -- internals -------------------------------------------------------------------------------------------
    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got shape {a.shape} ({action!r})")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()!r}")
        return np.clip(a, -1.0, 1.0)

    def _instability(self, warnings_before: int) -> str | None:
        data = self.scene.data  # type: ignore[union-attr]
        if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
            return "unstable_simulation: non-finite qpos/qvel"
        if np.max(np.abs(data.qvel), initial=0.0) > MAX_QVEL:
            return f"unstable_simulation: |qvel| {np.max(np.abs(data.qvel)):.3g} > {MAX_QVEL:g}"
        warnings_after = sum(data.warning[w].number for w in _BAD_WARNINGS)
        if warnings_after > warnings_before:
            return "unstable_simulation: MuJoCo reported bad qacc/qvel/qpos and reset the state"
        return None

    def _observation(self) -> dict[str, Any]:
        assert self.scene is not None and self.robot is not None and self.episode is not None
        self._frames = {cam: self.scene.render_rgb(cam) for cam in self.config.cameras}
        state = np.clip(np.nan_to_num(self.robot.state(), nan=0.0), -STATE_BOUND, STATE_BOUND)
        obs: dict[str, Any] = {"pixels": dict(self._frames)} if self.config.cameras else {}
        obs["agent_pos"] = state.astype(np.float32)
        obs["instruction"] = self.episode.instruction
        return obs

    def _info(self, success: bool, components: dict[str, float] | None = None) -> dict[str, Any]:
        assert self.episode is not None
        return {
            "is_success": bool(success),
            "instruction": self.episode.instruction,
            "reward_components": dict(components or {}),
            "task": self.task_name,
            "privileged_state": self.privileged_state(),
            "privileged_objects": self.objects_state(),
            "relation": self.episode.relation,
            "touched": self.touched_role(),
            "nearest": self.nearest_role(),
        }

    def role(self, name: str) -> str:
        """What object `name` is to this episode: "target", "reference" or "other"."""
        ep = self.episode
        assert ep is not None
        return "target" if name == ep.target else "reference" if name == ep.reference else "other"

    def touched_role(self) -> str:
        """The role of the object a finger pad touches now ("target" first, then "reference", "other"), or ""
        when the pads touch no object: the rollout diagnostics use it to tell "went for a wrong object" from
        "reached the named one and fumbled"."""
        assert self.scene is not None and self.robot is not None
        left, right = self.robot.pad_contacts()
        geoms = left | right
        objs = zip(self.scene.spec.objects, self.scene.object_geoms, strict=True)
        roles = {self.role(o.name) for o, g in objs if g & geoms}
        return next((r for r in ("target", "reference", "other") if r in roles), "")

    def nearest_role(self) -> str:
        """The role of the movable object whose centre is nearest the gripper now."""
        assert self.scene is not None and self.robot is not None
        objs = self.scene.spec.objects
        movable = [i for i, o in enumerate(objs) if SHAPES[o.shape].movable]
        pos = self.scene.data.xpos[self.scene.body_ids[movable]]  # [M, 3]
        i = movable[int(np.argmin(np.linalg.norm(pos - self.robot.ee_pos, axis=1)))]
        return self.role(objs[i].name)

    def privileged_state(self) -> np.ndarray:
        """Target position now, the goal point, and their image coordinates (`PRIVILEGED_NAMES`): (14,)."""
        ep = self.episode
        assert ep is not None
        target = self.object_pos(ep.target)
        if ep.goal is not None:
            goal = np.asarray(ep.goal, dtype=np.float64)
        elif ep.reference is not None:
            goal = self.object_pos(ep.reference)
        else:
            goal = np.asarray(ep.spec.object(ep.target).pos, dtype=np.float64)
        points = np.stack([target, goal])  # [2, 3]
        uv_cols = self._image_coords(points).reshape(-1)  # [point, camera, (u, v)] flattened
        state = np.concatenate([target, goal, uv_cols]).astype(np.float32)
        return np.clip(np.nan_to_num(state, nan=OUT_OF_VIEW), -STATE_BOUND, STATE_BOUND)

    def _image_coords(self, points: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> their (u, v) in each of `PRIVILEGED_CAMERAS`, scaled to [-1, 1] over the
        image (`OUT_OF_VIEW` behind the camera): [N, C, 2]."""
        assert self.scene is not None
        uvs = []
        for cam in PRIVILEGED_CAMERAS:
            info = self.scene.camera(cam)
            uv, z = self.scene.project(points, info)  # [N, 2] pixels, [N]
            uv = uv / np.array([info.width, info.height]) * 2.0 - 1.0
            uvs.append(np.where(z[:, None] > 1e-6, np.clip(uv, -OUT_OF_VIEW, OUT_OF_VIEW), OUT_OF_VIEW))
        return np.stack(uvs, axis=1)  # [N, C, 2]

    def objects_state(self) -> np.ndarray:
        """Every object's identity, position and image coordinates, one slot each (`OBJECT_NAMES`):
        (OBJECT_SLOTS * len(OBJECT_FIELDS),). What an object-centric auxiliary loss needs to say what each
        image token shows ("a large blue cube, the leftmost of the cubes": `vla.object_labels`)."""
        assert self.scene is not None
        objs = self.scene.spec.objects
        if len(objs) > OBJECT_SLOTS:
            raise ValueError(f"{len(objs)} objects in the scene but OBJECT_SLOTS={OBJECT_SLOTS}; raise it")
        out = np.zeros((OBJECT_SLOTS, len(OBJECT_FIELDS)), np.float64)
        if objs:
            pos = np.stack([self.object_pos(o.name) for o in objs])  # [N, 3]
            eye = self.scene.camera("front").position  # [3]
            n = len(objs)
            out[:n, 0] = 1.0
            out[:n, 1] = [list(SHAPES).index(o.shape) for o in objs]
            out[:n, 2] = [list(COLORS).index(o.color) for o in objs]
            out[:n, 3] = [list(SIZES).index(o.size_label) for o in objs]
            out[:n, 4:7] = pos
            out[:n, 7] = np.linalg.norm(pos - eye, axis=1)
            out[:n, 8:] = self._image_coords(pos).reshape(n, -1)
        state = np.nan_to_num(out.reshape(-1), nan=OUT_OF_VIEW).astype(np.float32)
        return np.clip(state, -STATE_BOUND, STATE_BOUND)


def tanh_closeness(distance: float, scale: float = 10.0) -> float:
    """1 at distance 0, falling towards 0: the usual dense shaping term."""
    return float(1.0 - np.tanh(scale * distance))
