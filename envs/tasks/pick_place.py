"""svla/PickPlace-v0: "put the leftmost cube on the plate" / "... in the bin".

2-3 graspable objects of one shape (the pool), one or two receptacles (plate, bin) and distractors. The object
is named by a spatial relation; the receptacle by its noun, plus its colour when two of the same kind exist.
Success: the object rests inside the receptacle's footprint (xy), low (not dangling above it), and the finger
pads no longer touch it. Reward components: reach, grasp, carry (object to above the goal), success.
"""

from __future__ import annotations

import numpy as np

from envs.scene import BIN_WALL, MOVABLE_SHAPES, SHAPES, SceneSpec, object_spec, place_objects
from envs.tasks import sampling as S
from envs.tasks.base import Episode, TaskEnv, tanh_closeness
from envs.tasks.language import RELATIONS, color_phrase, instruction, refer

PREPOSITIONS = {"plate": "on", "bin": "in"}


def inner_radius(shape: str, half: float) -> float:
    """Radius around a receptacle's centre that counts as inside (plate rim / bin walls, with margin)."""
    return half - 0.012 if shape == "plate" else half - BIN_WALL - 0.012


def receptacle_top(shape: str, center_z: float, half_z: float) -> float:
    """Height of the surface an object rests on: the plate top or the bin floor."""
    return center_z + half_z if shape == "plate" else center_z - half_z + 2 * BIN_WALL


class PickPlaceEnv(TaskEnv):
    task_name = "pick_place"
    relations = tuple(RELATIONS)

    def _draw(self, rng: np.random.Generator) -> Episode | None:
        shape = S.choose(rng, list(MOVABLE_SHAPES))
        n_pool = int(rng.integers(2, 4))
        n_rec = int(rng.integers(1, 3))
        colors = S.distinct_colors(rng, n_pool + n_rec)
        pool = [object_spec(shape, c, S.random_size(rng)) for c in colors[:n_pool]]
        recs = [
            object_spec(S.choose(rng, ["plate", "bin"]), c, S.choose(rng, ["medium", "large"]))
            for c in colors[n_pool:]
        ]
        lo, hi = self.config.n_distractors
        n_extra = max(0, int(rng.integers(lo, hi + 1)) - (n_rec - 1))
        extra = S.distractors(rng, n_extra, S.other_movable(shape), [*pool, *recs], ("small", "medium"))
        objs = place_objects(rng, [*pool, *recs, *extra], gap=S.MANIPULATION_GAP, max_yaw=S.MANIPULATION_YAW)
        eye, cam_target = self.front_camera(rng)
        spec = SceneSpec(objects=objs, front_eye=eye, front_target=cam_target)
        relation = S.choose(rng, list(self.relations))
        ref = refer(relation, [o for o in objs if o.shape == shape], spec, rng)
        if ref is None:
            return None
        rec = spec.object(recs[int(rng.integers(n_rec))].name)
        same_kind = sum(o.shape == rec.shape for o in objs) > 1
        rec_phrase = color_phrase(rec) if same_kind else f"the {SHAPES[rec.shape].word}"
        target = spec.object(ref.name)
        top = receptacle_top(rec.shape, rec.pos[2], rec.size[2])
        goal = (rec.pos[0], rec.pos[1], top + target.size[2])
        text = instruction(
            "pick_place", rng, target=ref.phrase, prep=PREPOSITIONS[rec.shape], receptacle=rec_phrase
        )
        return Episode(
            spec=spec, instruction=text, target=target.name, reference=rec.name, goal=goal, relation=relation
        )

    def evaluate(self) -> tuple[dict[str, float], bool]:
        ep = self.episode
        pos = self.object_pos(ep.target)
        rec = ep.spec.object(ep.reference)
        goal = np.asarray(ep.goal)
        dxy = float(np.linalg.norm(pos[:2] - goal[:2]))
        left, right = self.touching(ep.target)
        inside = dxy <= inner_radius(rec.shape, rec.size[0]) and pos[2] <= goal[2] + 0.02
        success = inside and not (left or right)
        above_goal = goal + np.array([0.0, 0.0, 0.05])
        components = {
            "reach": 0.25 * tanh_closeness(float(np.linalg.norm(self.robot.ee_pos - pos))),
            "grasp": 0.25 * float(left and right),
            "carry": tanh_closeness(float(np.linalg.norm(pos - above_goal)), 5.0),
            "success": 2.0 * float(success),
        }
        return components, success
