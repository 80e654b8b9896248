"""svla/Reach-v0: "touch the cube closest to the blue ball".

2-3 objects of one shape (the pool) plus distractors; the instruction names one pool object by a spatial
relation (leftmost, closest to the camera, closest to another object, larger...). Success: the gripper's grasp
point is within `SUCCESS_RADIUS` of the point `HOVER` above the object's top centre (fingers straddle or touch
it). Reward components: reach (closeness to that point), wrong (closeness to any other pool object, negative),
success.
"""

from __future__ import annotations

import numpy as np

from envs.scene import MOVABLE_SHAPES, SHAPES, SceneSpec, object_spec, place_objects
from envs.tasks import sampling as S
from envs.tasks.base import Episode, TaskEnv, tanh_closeness
from envs.tasks.language import RELATIONS, instruction, refer

HOVER = 0.015
SUCCESS_RADIUS = 0.03


def touch_point(pos: np.ndarray, half_height: float) -> np.ndarray:
    return np.asarray(pos, float) + np.array([0.0, 0.0, half_height + HOVER])


class ReachEnv(TaskEnv):
    task_name = "reach"
    relations = tuple(RELATIONS)

    def _draw(self, rng: np.random.Generator) -> Episode | None:
        shape = S.choose(rng, list(MOVABLE_SHAPES))
        n_pool = int(rng.integers(2, 4))
        pool = [object_spec(shape, c, S.random_size(rng)) for c in S.distinct_colors(rng, n_pool)]
        lo, hi = self.config.n_distractors
        extra = S.distractors(rng, int(rng.integers(lo, hi + 1)), [s for s in SHAPES if s != shape], pool)
        objs = place_objects(rng, pool + extra, gap=0.03, max_yaw=np.pi)
        eye, target = self.front_camera(rng)
        spec = SceneSpec(objects=objs, front_eye=eye, front_target=target)
        relation = S.choose(rng, list(self.relations))
        ref = refer(relation, [o for o in objs if o.shape == shape], spec, rng)
        if ref is None:
            return None
        return Episode(
            spec=spec,
            instruction=instruction("reach", rng, target=ref.phrase),
            target=ref.name,
            relation=relation,
        )

    def evaluate(self) -> tuple[dict[str, float], bool]:
        ep = self.episode
        ee = self.robot.ee_pos
        target = ep.spec.object(ep.target)
        d = float(np.linalg.norm(ee - touch_point(self.object_pos(ep.target), target.size[2])))
        others = [o for o in ep.spec.objects if o.shape == target.shape and o.name != target.name]
        d_wrong = min(
            float(np.linalg.norm(ee - touch_point(self.object_pos(o.name), o.size[2]))) for o in others
        )
        success = d < SUCCESS_RADIUS
        components = {
            "reach": tanh_closeness(d, 5.0),
            "wrong": -0.5 * float(d_wrong < SUCCESS_RADIUS),
            "success": 2.0 * float(success),
        }
        return components, success
