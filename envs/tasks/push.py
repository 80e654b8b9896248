"""svla/Push-v0: "push the leftmost cube to the right of the red cylinder".

2-3 cubes (the pool), an anchor (cylinder, plate or bin; none of them rolls away) and distractors. The target
cube is named by a spatial relation; the direction ("to the left of", "in front of" = closer to the camera,
...) comes from the `DIRECTIONS` registry. Layouts are kept only if the straight push from the cube to the
goal is free of other objects (so the task is solvable by pushing) and the cube is not already there. Success:
the cube is on the requested side of the anchor (past its footprint), within `LATERAL_TOLERANCE` sideways, and
still on the table. Reward components: reach (gripper behind the cube), progress (cube to goal), success.
"""

from __future__ import annotations

import numpy as np

from envs.scene import SceneSpec, object_spec, place_objects
from envs.tasks import sampling as S
from envs.tasks.base import Episode, TaskEnv, tanh_closeness
from envs.tasks.language import color_phrase, instruction, refer

# name -> (phrase, unit direction in the table plane)
DIRECTIONS: dict[str, tuple[str, tuple[float, float]]] = {
    "left": ("to the left of", (-1.0, 0.0)),
    "right": ("to the right of", (1.0, 0.0)),
    "front": ("in front of", (0.0, -1.0)),
    "behind": ("behind", (0.0, 1.0)),
}
ANCHOR_SHAPES = ("cylinder", "plate", "bin")
GOAL_CLEARANCE = 0.025  # goal = anchor centre + direction * (anchor footprint + cube footprint + this)
LATERAL_TOLERANCE = 0.05
MIN_PUSH = 0.08
GOAL_BOUNDS = (0.2, 0.19)  # |x|, |y| limits of the goal point
TARGET_RELATIONS = ("leftmost", "rightmost", "closest_to_camera", "farthest_from_camera", "larger", "smaller")


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def pushed_past(cube_xy: np.ndarray, anchor_xy: np.ndarray, anchor_fp: float, u: np.ndarray) -> bool:
    """Is the cube on side `u` of the anchor (past its footprint) and within the lateral tolerance?"""
    rel = cube_xy - anchor_xy
    along, lateral = float(rel @ u), float(abs(rel @ np.array([-u[1], u[0]])))
    return along >= anchor_fp + 0.005 and lateral <= LATERAL_TOLERANCE


def push_geometry(
    target_fp: float, anchor_xy: np.ndarray, anchor_fp: float, direction: np.ndarray
) -> np.ndarray:
    """The goal point (xy) of the cube's centre."""
    return anchor_xy + direction * (anchor_fp + target_fp + GOAL_CLEARANCE)


class PushEnv(TaskEnv):
    task_name = "push"

    def _draw(self, rng: np.random.Generator) -> Episode | None:
        n_pool = int(rng.integers(2, 4))
        colors = S.distinct_colors(rng, n_pool + 1)
        pool = [object_spec("cube", c, S.random_size(rng)) for c in colors[:n_pool]]
        anchor_shape = S.choose(rng, list(ANCHOR_SHAPES))
        anchor = object_spec(anchor_shape, colors[-1], S.choose(rng, ["small", "medium"]))
        lo, hi = self.config.n_distractors
        extra = S.distractors(rng, int(rng.integers(lo, hi + 1)), ("sphere", "cylinder"), [*pool, anchor])
        objs = place_objects(rng, [*pool, anchor, *extra], gap=0.03, max_yaw=S.MANIPULATION_YAW)
        eye, cam_target = self.front_camera(rng)
        spec = SceneSpec(objects=objs, front_eye=eye, front_target=cam_target)
        relation = S.choose(rng, list(TARGET_RELATIONS))
        ref = refer(relation, [o for o in objs if o.shape == "cube"], spec, rng)
        if ref is None:
            return None
        anchor = spec.object(anchor.name)
        target = spec.object(ref.name)
        dname = S.choose(rng, list(DIRECTIONS))
        phrase, d = DIRECTIONS[dname]
        u = np.asarray(d)
        goal = push_geometry(target.footprint, np.asarray(anchor.pos[:2]), anchor.footprint, u)
        if not self._feasible(spec, target, goal):
            return None
        if pushed_past(np.asarray(target.pos[:2]), np.asarray(anchor.pos[:2]), anchor.footprint, u):
            return None  # already done at reset: nothing to learn, and 1-frame episodes

        text = instruction("push", rng, target=ref.phrase, direction=phrase, anchor=color_phrase(anchor))
        return Episode(
            spec=spec,
            instruction=text,
            target=target.name,
            reference=anchor.name,
            goal=(float(goal[0]), float(goal[1]), target.pos[2]),
            relation=relation,
            extra={"direction": dname},
        )

    @staticmethod
    def _feasible(spec: SceneSpec, target, goal: np.ndarray) -> bool:
        start = np.asarray(target.pos[:2])
        if np.any(np.abs(goal) > GOAL_BOUNDS) or np.linalg.norm(goal - start) < MIN_PUSH:
            return False
        u = (goal - start) / np.linalg.norm(goal - start)
        pre = start - u * (target.footprint + 0.045)  # where the gripper comes down
        if np.any(np.abs(pre) > 0.27):
            return False
        for o in spec.objects:
            if o.name == target.name:
                continue
            p = np.asarray(o.pos[:2])
            if _segment_distance(p, start, goal) < o.footprint + target.footprint + 0.015:
                return False
            if np.linalg.norm(p - pre) < o.footprint + 0.05:
                return False
        return True

    def evaluate(self) -> tuple[dict[str, float], bool]:
        ep = self.episode
        pos = self.object_pos(ep.target)
        anchor = ep.spec.object(ep.reference)
        target = ep.spec.object(ep.target)
        u = np.asarray(DIRECTIONS[ep.extra["direction"]][1])
        on_table = abs(float(pos[2]) - target.pos[2]) < 0.01
        success = on_table and pushed_past(pos[:2], self.object_pos(anchor.name)[:2], anchor.footprint, u)
        goal = np.asarray(ep.goal[:2])
        to_goal = goal - pos[:2]
        u_push = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
        behind = np.array([*(pos[:2] - u_push * (target.footprint + 0.015)), pos[2]])
        components = {
            "reach": 0.25 * tanh_closeness(float(np.linalg.norm(self.robot.ee_pos - behind))),
            "progress": tanh_closeness(float(np.linalg.norm(to_goal)), 5.0),
            "success": 2.0 * float(success),
        }
        return components, success
