"""svla/Lift-v0: one object, no distractors: "pick up the cube".

The plain control task: it separates "can the policy act" from "can it find the object the words name".
Success: the object's centre is `LIFT_HEIGHT` above its resting height (the gripper holds it up).
Reward components: reach (gripper to object), grasp (both pads touch it), lift (height progress), success.
"""

from __future__ import annotations

import numpy as np

from envs.scene import MOVABLE_SHAPES, SceneSpec, object_spec, place_objects
from envs.tasks import sampling as S
from envs.tasks.base import Episode, TaskEnv, tanh_closeness
from envs.tasks.language import color_phrase, instruction, word

LIFT_HEIGHT = 0.06


class LiftEnv(TaskEnv):
    task_name = "lift"

    def sample_episode(self, rng: np.random.Generator) -> Episode:
        shape = S.choose(rng, list(MOVABLE_SHAPES))
        obj = object_spec(shape, S.distinct_colors(rng, 1)[0], S.random_size(rng))
        objs = place_objects(rng, [obj], workspace=((-0.18, 0.18), (-0.15, 0.17)), max_yaw=S.MANIPULATION_YAW)
        eye, target = self.front_camera(rng)
        spec = SceneSpec(objects=objs, front_eye=eye, front_target=target)
        by_color = bool(rng.integers(2))
        phrase = color_phrase(objs[0]) if by_color else f"the {word(objs[0])}"
        return Episode(
            spec=spec,
            instruction=instruction("lift", rng, target=phrase),
            target=objs[0].name,
            relation="color" if by_color else "only",
        )

    def evaluate(self) -> tuple[dict[str, float], bool]:
        ep = self.episode
        pos = self.object_pos(ep.target)
        rest = ep.spec.object(ep.target).pos[2]
        height = float(pos[2] - rest)
        left, right = self.touching(ep.target)
        success = height >= LIFT_HEIGHT
        components = {
            "reach": 0.25 * tanh_closeness(float(np.linalg.norm(self.robot.ee_pos - pos))),
            "grasp": 0.25 * float(left and right),
            "lift": float(np.clip(height / LIFT_HEIGHT, 0.0, 1.0)),
            "success": 2.0 * float(success),
        }
        return components, success
