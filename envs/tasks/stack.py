"""svla/Stack-v0: "stack the smaller cube on the larger one".

Two cubes of different sizes plus distractors (other shapes). The cube to move is named by a spatial relation
(size, left/right, distance to the camera or to another object); the base is "the other cube" / "the other
one" / for size relations "the larger/smaller one". Success: the moved cube rests on the base (centred within
the base's half width, at the stacked height) and the pads no longer touch it; the base stays on the table.
Reward components: reach, grasp, carry (cube to above the base), success.
"""

from __future__ import annotations

import numpy as np

from envs.scene import SceneSpec, object_spec, place_objects
from envs.tasks import sampling as S
from envs.tasks.base import Episode, TaskEnv, tanh_closeness
from envs.tasks.language import instruction, refer

RELATIONS = (
    "larger",
    "smaller",
    "leftmost",
    "rightmost",
    "closest_to_camera",
    "farthest_from_camera",
    "closest_to_anchor",
)
BASE_PHRASES = {"larger": "the smaller one", "smaller": "the larger one"}


class StackEnv(TaskEnv):
    task_name = "stack"

    def _draw(self, rng: np.random.Generator) -> Episode | None:
        colors = S.distinct_colors(rng, 2)
        sizes = [str(s) for s in rng.permutation(["small", "medium", "large"])[:2]]
        cubes = [object_spec("cube", c, s) for c, s in zip(colors, sizes, strict=True)]
        lo, hi = self.config.n_distractors
        n_extra = max(1, int(rng.integers(lo, hi + 1)))
        extra = S.distractors(rng, n_extra, ("sphere", "cylinder", "plate"), cubes, ("small", "medium"))
        objs = place_objects(rng, [*cubes, *extra], gap=S.MANIPULATION_GAP, max_yaw=S.MANIPULATION_YAW)
        eye, cam_target = self.front_camera(rng)
        spec = SceneSpec(objects=objs, front_eye=eye, front_target=cam_target)
        relation = S.choose(rng, list(RELATIONS))
        ref = refer(relation, [o for o in objs if o.shape == "cube"], spec, rng)
        if ref is None:
            return None
        top = spec.object(ref.name)
        base = next(o for o in objs if o.shape == "cube" and o.name != top.name)
        base_phrase = BASE_PHRASES.get(relation, S.choose(rng, ["the other cube", "the other one"]))
        goal = (base.pos[0], base.pos[1], 2 * base.size[2] + top.size[2])
        text = instruction("stack", rng, target=ref.phrase, base=base_phrase)
        return Episode(
            spec=spec, instruction=text, target=top.name, reference=base.name, goal=goal, relation=relation
        )

    def evaluate(self) -> tuple[dict[str, float], bool]:
        ep = self.episode
        pos, base_pos = self.object_pos(ep.target), self.object_pos(ep.reference)
        top, base = ep.spec.object(ep.target), ep.spec.object(ep.reference)
        dxy = float(np.linalg.norm(pos[:2] - base_pos[:2]))
        dz = float(pos[2] - base_pos[2])
        left, right = self.touching(ep.target)
        stacked = dxy <= base.size[0] and abs(dz - (base.size[2] + top.size[2])) < 0.01
        base_down = abs(float(base_pos[2]) - base.size[2]) < 0.01
        success = stacked and base_down and not (left or right)
        above = np.array([*base_pos[:2], base_pos[2] + base.size[2] + top.size[2] + 0.04])
        components = {
            "reach": 0.25 * tanh_closeness(float(np.linalg.norm(self.robot.ee_pos - pos))),
            "grasp": 0.25 * float(left and right),
            "carry": tanh_closeness(float(np.linalg.norm(pos - above)), 5.0),
            "success": 2.0 * float(success),
        }
        return components, success
