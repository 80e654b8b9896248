"""Scripted experts for every task, from the simulator's ground truth, and a wrapper exposing their actions.

Design decisions:
- An expert is a small state machine over waypoints (above -> descend -> close -> lift -> carry -> lower ->
  release -> retreat for pick-style tasks; approach-behind -> descend -> closed-loop push for Push). It reads
  ground truth from `env.unwrapped` (`episode`, `scene`, `robot`) and outputs the same 4-D action a policy
  does: `clip((waypoint - ee) / max_step, -1, 1)` plus the gripper command, so demonstrations are in the
  policy's action space at the env's control rate.
- Phases advance on measured state (position errors, a few steps for the gripper), never on time alone, so the
  experts tolerate lag and small disturbances; the push expert re-approaches if the cube slips off the pusher,
  the pick expert starts over when the object is no longer in the hand (`HELD_TOL`), the reach expert when
  the gripper left the column above its target. So an expert also labels states a learner drove it into
  (DAgger, `vla.dagger`): its action there is the way back, not the continuation of a plan that failed.
- Registry `EXPERTS` keyed by task id; `make_expert(env)` picks the right one. Optional Gaussian action noise
  (`noise_std`, seeded) for diverse demonstrations; off by default.
- `ExpertActionWrapper` puts the expert's next action in `info["expert_action"]` after reset and every step,
  so a (vector) env main loop can feed `infos["expert_action"]` back as the next actions.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.registration import task_id_for
from envs.robot import ACTION_DIM, EE_ABOVE_TIP

CARRY_Z = 0.15  # travel height of the grasp point
OPEN, CLOSE = -1.0, 1.0
GRIPPER_STEPS = 3  # control steps to close/open the fingers
HELD_TOL = 0.04  # m: grasp point farther than this from the object's centre = the object is not in the hand
REACH_COLUMN = 0.03  # m: reach expert descends only within this horizontal distance of its target


class Expert:
    """Base class: a phase machine. Subclasses implement `_plan(u) -> (waypoint (3,), gripper, done)`."""

    def __init__(self, noise_std: float = 0.0, seed: int | None = None) -> None:
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.noise_std = noise_std
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.counter = 0

    def act(self, env: gym.Env) -> np.ndarray:
        """The next action (float32 (4,), in [-1, 1]) for the env's current state."""
        u = env.unwrapped
        waypoint, gripper = self._plan(u)
        ee = u.robot.ee_pos
        action = np.zeros(ACTION_DIM, dtype=np.float32)
        action[:3] = np.clip((waypoint - ee) / u.robot.config.max_step, -1.0, 1.0)
        action[3] = gripper
        if self.noise_std > 0:
            action[:3] += self._rng.normal(0.0, self.noise_std, 3).astype(np.float32)
        return np.clip(action, -1.0, 1.0)

    def _plan(self, u: Any) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _advance(self) -> None:
        self.phase += 1
        self.counter = 0


def _near(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool(np.linalg.norm(np.asarray(a) - np.asarray(b)) < tol)


class PickExpert(Expert):
    """Grasp the episode's target and put it at a goal (or just lift it): the base of Lift/PickPlace/Stack."""

    place = True

    def _grasp_z(self, u: Any, pos: np.ndarray) -> float:
        half = u.episode.spec.object(u.episode.target).size[2]
        # Grasp at the centre, but keep the fingertips ~3 mm above the table.
        return float(max(pos[2], EE_ABOVE_TIP + 0.003, half * 0.6))

    def _goal(self, u: Any) -> np.ndarray:
        """Where the object's centre should end up (world)."""
        return np.asarray(u.episode.goal, float)

    def _plan(self, u: Any) -> tuple[np.ndarray, float]:
        ee = u.robot.ee_pos
        pos = u.object_pos(u.episode.target)
        grasp = np.array([pos[0], pos[1], self._grasp_z(u, pos)])
        above = np.array([pos[0], pos[1], max(CARRY_Z, grasp[2] + 0.06)])
        if self.phase in (3, 4, 5) and not _near(ee, pos, HELD_TOL):
            self.phase, self.counter = 0, 0  # dropped, or closed on nothing: start over
        self.counter += 1
        if self.phase == 0:  # rise to travel height, then above the object
            wp = above if ee[2] > CARRY_Z - 0.03 else np.array([ee[0], ee[1], CARRY_Z])
            if _near(ee[:2], above[:2], 0.008) and ee[2] > CARRY_Z - 0.03:
                self._advance()
            return wp, OPEN
        if self.phase == 1:  # descend around it
            if _near(ee, grasp, 0.006):
                self._advance()
            return grasp, OPEN
        if self.phase == 2:  # close
            if self.counter >= GRIPPER_STEPS:
                self._advance()
            return grasp, CLOSE
        goal = self._goal(u) if self.place else np.array([pos[0], pos[1], pos[2] + 0.1])
        held_offset = ee[2] - pos[2]  # grasp point above the object's centre
        if self.phase == 3:  # lift
            lift = np.array([ee[0], ee[1], CARRY_Z if self.place else goal[2] + held_offset])
            if ee[2] > lift[2] - 0.01:
                self._advance()
            return lift, CLOSE
        if not self.place:
            return np.array([ee[0], ee[1], goal[2] + held_offset]), CLOSE
        carry = np.array([goal[0] + ee[0] - pos[0], goal[1] + ee[1] - pos[1], CARRY_Z])
        if self.phase == 4:  # carry above the goal (compensating the object's offset in the hand)
            if _near(ee[:2], carry[:2], 0.006):
                self._advance()
            return carry, CLOSE
        lower = np.array([carry[0], carry[1], goal[2] + held_offset + 0.006])
        if self.phase == 5:  # lower until the object is just above its resting height
            if abs(pos[2] - goal[2]) < 0.01 or ee[2] < lower[2] + 0.004:
                self._advance()
            return lower, CLOSE
        if self.phase == 6:  # release
            if self.counter >= GRIPPER_STEPS:
                self._advance()
            return lower, OPEN
        return np.array([ee[0], ee[1], CARRY_Z]), OPEN  # retreat


class LiftExpert(PickExpert):
    place = False


class StackExpert(PickExpert):
    def _goal(self, u: Any) -> np.ndarray:
        base = u.object_pos(u.episode.reference)
        spec = u.episode.spec
        top_half, base_half = spec.object(u.episode.target).size[2], spec.object(u.episode.reference).size[2]
        return np.array([base[0], base[1], base[2] + base_half + top_half])


class ReachExpert(Expert):
    def _plan(self, u: Any) -> tuple[np.ndarray, float]:
        from envs.tasks.reach import touch_point

        ee = u.robot.ee_pos
        target = u.episode.spec.object(u.episode.target)
        point = touch_point(u.object_pos(target.name), target.size[2])
        if self.phase == 1 and not _near(ee[:2], point[:2], REACH_COLUMN):
            self.phase = 0  # pushed (or driven) out of the column above the target: approach again
        if self.phase == 0:
            above = point + np.array([0.0, 0.0, 0.05])
            if _near(ee[:2], above[:2], 0.01):
                self._advance()
            return np.array([above[0], above[1], max(above[2], min(ee[2], CARRY_Z))]), OPEN
        return point, OPEN


class PushExpert(Expert):
    """Pushes in straight segments: get behind the cube on the line to the goal, descend, push along that
    fixed direction while keeping the pusher on the cube's line; re-approach when the cube's bearing to the
    goal has turned by more than `max_turn` (the cube drifted) or it slipped off the pusher."""

    push_step = 0.02
    max_turn = 0.2  # radians

    def reset(self) -> None:
        super().reset()
        self.push_dir: np.ndarray | None = None

    def _plan(self, u: Any) -> tuple[np.ndarray, float]:
        ee = u.robot.ee_pos
        target = u.episode.spec.object(u.episode.target)
        pos = u.object_pos(target.name)
        goal = np.asarray(u.episode.goal[:2])
        to_goal = goal - pos[:2]
        dist = float(np.linalg.norm(to_goal))
        bearing = to_goal / max(dist, 1e-6)
        push_z = max(EE_ABOVE_TIP + 0.004, target.size[2] * 0.8)
        if self.phase == 3 or (self.phase == 2 and (dist < 0.012 or float(to_goal @ self.push_dir) < 0)):
            self.phase = 3  # done: back off upwards
            return np.array([ee[0] - bearing[0] * 0.02, ee[1] - bearing[1] * 0.02, 0.1]), CLOSE
        if self.phase == 2:
            d = self.push_dir
            normal = np.array([-d[1], d[0]])
            rel = ee[:2] - pos[:2]
            lateral, along = float(rel @ normal), float(rel @ d)
            turned = float(np.arccos(np.clip(bearing @ d, -1.0, 1.0))) > self.max_turn and dist > 0.03
            if abs(lateral) > 0.02 or along > -target.size[0] or turned:
                self.phase = 0  # re-approach along the new bearing
            else:  # advance along d, pull back onto the cube's line
                wp_xy = ee[:2] + d * self.push_step - normal * lateral
                return np.array([wp_xy[0], wp_xy[1], push_z]), CLOSE
        behind = pos[:2] - bearing * (target.footprint + 0.02)
        if self.phase == 0:  # above the point behind the cube
            wp = np.array([behind[0], behind[1], 0.1])
            if ee[2] < 0.08 and not _near(ee[:2], behind, 0.02):
                wp = np.array([ee[0], ee[1], 0.1])  # rise first
            if _near(ee[:2], behind, 0.008) and ee[2] > 0.08:
                self.phase = 1
            return wp, CLOSE
        # phase 1: descend behind the cube
        wp = np.array([behind[0], behind[1], push_z])
        if _near(ee, wp, 0.008):
            self.phase, self.push_dir = 2, bearing
        return wp, CLOSE


EXPERTS: dict[str, type[Expert]] = {
    "svla/Lift-v0": LiftExpert,
    "svla/Reach-v0": ReachExpert,
    "svla/Push-v0": PushExpert,
    "svla/PickPlace-v0": PickExpert,
    "svla/Stack-v0": StackExpert,
}


def make_expert(env: gym.Env, noise_std: float = 0.0, seed: int | None = None) -> Expert:
    """The scripted expert of `env`'s task (found from `env.unwrapped.task_name`)."""
    name = getattr(env.unwrapped, "task_name", None)
    if not name:
        raise ValueError(f"{env!r} is not an svla task env; experts exist for {sorted(EXPERTS)}")
    task_id = task_id_for(name)
    if task_id not in EXPERTS:
        raise ValueError(f"no expert for {task_id!r}; experts exist for {sorted(EXPERTS)}")
    return EXPERTS[task_id](noise_std=noise_std, seed=seed)


class ExpertActionWrapper(gym.Wrapper):
    """Adds `info["expert_action"]` (float32 (4,)): the expert's action for the state just returned.

    Works inside `gymnasium.vector.AsyncVectorEnv`: step the vector env with `infos["expert_action"]`.
    """

    def __init__(self, env: gym.Env, noise_std: float = 0.0, seed: int | None = None) -> None:
        super().__init__(env)
        self.expert = make_expert(env, noise_std=noise_std, seed=seed)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.expert.reset()
        info["expert_action"] = self.expert.act(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["expert_action"] = self.expert.act(self.env)
        return obs, reward, terminated, truncated, info
