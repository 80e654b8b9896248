"""Every spatial skill's ground truth, checked on hand-built scenes whose answer is known from the layout.

Default camera in these tests: the front view at azimuth 0, elevation 45, so camera X = world +x (left/right),
"closer" = smaller world y, and the camera-frame Y axis (down) is (0, -0.71, -0.71) in world coordinates.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from envs.scene import Scene, SceneSpec, object_spec  # noqa: E402
from spatial_backbone.data.config import CameraConfig  # noqa: E402
from spatial_backbone.data.context import Pose, SceneContext, orbit_pose  # noqa: E402
from spatial_backbone.data.formats import FORMATS, apply_format, choose_format  # noqa: E402
from spatial_backbone.data.render import DataScene  # noqa: E402
from spatial_backbone.data.skills import SKILLS, UnknownSkillError, get_skill, resolve_skills  # noqa: E402
from spatial_backbone.data.skills.multi_view import motion_label  # noqa: E402
from spatial_backbone.data.skills.ssrl import patches  # noqa: E402
from spatial_backbone.data.skills.video import ego_direction  # noqa: E402
from spatial_backbone.evaluation.metrics import box3d_corners, box3d_iou  # noqa: E402

REQUIRED = {
    "single_view": [
        "depth_comparison",
        "relative_position_2d",
        "relative_position_3d",
        "distance",
        "object_size",
        "size_comparison",
        "height_comparison",
        "counting",
        "existence",
        "closest_object",
        "box_2d",
        "boxes_3d",
        "scene_graph",
    ],
    "multi_view": ["camera_motion", "cross_view_correspondence", "cross_view_relation"],
    "video": ["appearance_order", "video_count", "egocentric_direction", "travel_distance"],
    "ssrl": ["patch_shuffle", "patch_flip", "crop_inpainting", "depth_ordering", "relative_3d_marked"],
    "grounding": ["grounding_point", "grounding_box", "grounding_choice"],
}
FRONT = orbit_pose(0.0, 45.0, 0.75, (0.0, 0.0, 0.0))
# red cube (large) front-left, blue ball (small) back-right
TWO = [("cube", "red", "large", (-0.12, -0.10)), ("sphere", "blue", "small", (0.12, 0.12))]


def make_ctx(objects, pose: Pose = FRONT, absent=(("green", "cube"),)) -> SceneContext:
    objs = tuple(object_spec(s, c, z, xy) for s, c, z, xy in objects)
    spec = SceneSpec(objects=objs, image_size=112, front_eye=pose.eye, front_target=pose.target, fovy=45.0)
    return SceneContext(DataScene(spec), CameraConfig(), False, absent, pose)


@pytest.fixture
def ctx_two():
    ctx = make_ctx(TWO)
    yield ctx
    ctx.scene.close()


def run_skill(name: str, ctx: SceneContext, seeds: int = 40, want=lambda s: True):
    """Samples of skill `name` over several seeds (skills may decline a draw)."""
    out = []
    for seed in range(seeds):
        out += [s for s in get_skill(name).fn(ctx, np.random.default_rng(seed)) if want(s)]
    assert out, f"{name} produced no sample on the hand-built scene"
    return out


def chosen(s) -> str:
    return s.gt["options"][s.gt["index"]]


# -- registry
# -----------------------------------------------------------------------------------------------------
def test_every_required_skill_is_registered_in_its_family():
    for family, names in REQUIRED.items():
        for n in names:
            assert get_skill(n).family == family


def test_unknown_skill_lists_the_valid_ones():
    with pytest.raises(UnknownSkillError) as err:
        resolve_skills(["depth_comparison", "telepathy"])
    assert (
        "telepathy" in str(err.value)
        and "depth_comparison" in str(err.value)
        and "patch_flip" in str(err.value)
    )


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_every_skill_makes_valid_formatted_items_on_a_random_scene(name):
    ctx = make_ctx(
        [
            ("cube", "red", "large", (-0.15, -0.1)),
            ("cube", "blue", "medium", (0.1, -0.05)),
            ("sphere", "green", "small", (0.0, 0.12)),
            ("cylinder", "yellow", "medium", (0.16, 0.1)),
        ]
    )
    try:
        for s in run_skill(name, ctx, seeds=25)[:3]:
            apply_format(s, choose_format(s, np.random.default_rng(0), 0.5, 0.5))
            assert s.reward in ("vst", "spatialthinker", "ssrl") and s.answer and s.question
            json.dumps(s.gt), json.dumps(s.meta)
            assert s.images and all(img.shape[:2] == (112, 112) or img.ndim == 3 for img in s.images)
    finally:
        ctx.scene.close()


# -- single view
# ------------------------------------------------------------------------------------------------
def test_depth_size_height_comparison_pick_the_big_front_cube(ctx_two):
    for name in ("depth_comparison", "size_comparison", "height_comparison"):
        for s in run_skill(name, ctx_two, seeds=6):
            assert chosen(s) == "red cube", name
            assert s.core == s.gt["letter"] and s.gt["options"][ord(s.core) - 65] == "red cube"


def test_relative_position_2d(ctx_two):
    for s in run_skill("relative_position_2d", ctx_two, seeds=12):
        red_first = s.question.index("red cube") < s.question.index("blue ball")
        expect = (
            ("left" if red_first else "right")
            if "left or" in s.question
            else ("below" if red_first else "above")
        )
        assert s.core == expect, s.question


def test_relative_position_3d_in_the_camera_frame(ctx_two):
    truths = {"to the left of", "in front of", "below"}  # red cube relative to blue ball
    opposite = {"to the left of": "to the right of", "in front of": "behind", "below": "above"}
    for s in run_skill("relative_position_3d", ctx_two, seeds=20):
        rel = s.meta["relation"]
        red_subject = s.question.index("red cube") < s.question.index("blue ball")
        holds = rel in truths if red_subject else rel in {opposite[t] for t in truths}
        assert s.core == ("yes" if holds else "no"), s.question


def test_distance_and_object_size_in_metres_or_centimetres(ctx_two):
    d = math.dist((-0.12, -0.10, 0.03), (0.12, 0.12, 0.018))
    for s in run_skill("distance", ctx_two, seeds=6):
        scale = 100 if s.gt["unit"] == "cm" else 1
        assert s.gt["value"] == pytest.approx(d * scale, abs=0.011 * scale / (10 if scale == 100 else 1))
    for s in run_skill("object_size", ctx_two, seeds=12):
        scale = 100 if s.gt["unit"] == "cm" else 1
        assert s.gt["value"] / scale in (pytest.approx(0.06, abs=1e-3), pytest.approx(0.036, abs=1e-3))


def test_counting_existence_closest():
    ctx = make_ctx(
        [
            ("cube", "red", "medium", (-0.15, -0.1)),
            ("cube", "blue", "medium", (0.15, -0.1)),
            ("sphere", "green", "medium", (-0.1, 0.08)),
        ]
    )
    try:
        for s in run_skill("counting", ctx, seeds=8):
            assert s.gt["value"] == (2 if "cube" in s.question else 1)
        for s in run_skill("existence", ctx, seeds=8):
            assert s.core == ("no" if "green cube" in s.question else "yes")
        for s in run_skill("closest_object", ctx, seeds=10):
            ref = s.question.split("closest to the ")[1].split("?")[0]
            pos = {"red cube": (-0.15, -0.1), "blue cube": (0.15, -0.1), "green ball": (-0.1, 0.08)}
            expect = min((o for o in s.gt["options"]), key=lambda o: math.dist(pos[o], pos[ref]))
            assert chosen(s) == expect
    finally:
        ctx.scene.close()


def test_box_2d_contains_the_projected_centre(ctx_two):
    for s in run_skill("box_2d", ctx_two, seeds=4):
        i = ctx_two.scene.object_index(s.gt["label"].replace(" ", "_").replace("ball", "sphere"))
        ((u, v),) = ctx_two.scene.project(ctx_two.objects[i].pos, "front")[0]
        x1, y1, x2, y2 = s.gt["bbox"]
        assert x1 < u < x2 and y1 < v < y2 and 0 <= x1 < x2 <= 112 and 0 <= y1 < y2 <= 112


def test_boxes_3d_reproduce_the_simulator_corners_in_the_camera_frame():
    objs = TWO + [("cylinder", "yellow", "medium", (0.0, 0.0))]
    ctx = make_ctx(objs)
    try:
        s = run_skill("boxes_3d", ctx, seeds=1)[0]
        ext = ctx.scene.camera("front").extrinsic
        assert len(s.gt["boxes"]) == 3
        for box, o in zip(s.gt["boxes"], ctx.objects, strict=True):
            sim = o.corners @ ext[:3, :3].T + ext[:3, 3]  # [8, 3] camera frame
            ours = box3d_corners(box["bbox_3d"])
            err = np.linalg.norm(sim[:, None] - ours[None], axis=-1).min(1).max()
            assert err < 4e-3, (box, err)
            assert box3d_iou(box["bbox_3d"], box["bbox_3d"]) > 0.97
        # VST box convention: for yaw-0 objects seen at 45 degrees, pitch = camera tilt, yaw = roll = 0
        pitch, yaw, roll = s.gt["boxes"][0]["bbox_3d"][6:]
        assert abs(abs(pitch) - math.pi / 4) < 0.02 and abs(yaw) < 0.02 and abs(roll) < 0.02
    finally:
        ctx.scene.close()


def test_scene_graph_ids_boxes_and_relation(ctx_two):
    s = run_skill("scene_graph", ctx_two, seeds=1)[0]
    ids = [o["id"] for o in s.gt["objects"]]
    assert ids == ["red cube.1", "blue ball.1"]
    assert s.gt["relations"] == [{"subject": "red cube.1", "predicate": "left of", "object": "blue ball.1"}]
    assert s.reward == "" and json.loads(s.core) == s.gt


# -- multi view
# -------------------------------------------------------------------------------------------------
def _view_pair(ctx, second: Pose):
    return ctx.view("main"), ctx.view("second", second)


@pytest.mark.parametrize(
    "pose,word",
    [
        (orbit_pose(20, 45, 0.75, (0, 0, 0)), "right"),
        (orbit_pose(-20, 45, 0.75, (0, 0, 0)), "left"),
        (orbit_pose(0, 60, 0.75, (0, 0, 0)), "up"),
        (orbit_pose(0, 35, 0.75, (0, 0, 0)), "down"),
        (orbit_pose(0, 45, 0.5, (0, 0, 0)), "forward"),
        (orbit_pose(0, 45, 1.0, (0, 0, 0)), "backward"),
    ],
)
def test_camera_motion_label(ctx_two, pose, word):
    assert motion_label(*_view_pair(ctx_two, pose))[0] == word


def test_multi_view_skills_on_a_known_second_view(ctx_two):
    ctx_two.cache["second"] = ctx_two.view("second", orbit_pose(20, 45, 0.75, (0, 0, 0)))
    assert run_skill("camera_motion", ctx_two, seeds=1)[0].core == "right"
    for s in run_skill("cross_view_correspondence", ctx_two, seeds=10):
        u2, v2 = s.meta["point_2"]
        obj = ctx_two.scene.object_index(s.meta["objects"][0].replace("ball", "sphere").replace(" ", "_"))
        assert ctx_two.view("second").seg[int(v2), int(u2)] == obj  # the marked point lies on the same object
    for s in run_skill("cross_view_relation", ctx_two, seeds=10):
        a, b = s.meta["objects"]
        assert s.core == ("right" if (a, b) == ("red cube", "blue ball") else "left")


# -- video
# ------------------------------------------------------------------------------------------------------
def test_ego_direction():
    a, b = np.array([0.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert ego_direction(a, b, np.array([-1.0, 0.5, 0.0]))[0] == "left"
    assert ego_direction(a, b, np.array([1.0, 0.5, 0.0]))[0] == "right"
    assert ego_direction(a, b, np.array([0.01, 2.0, 0.0]))[0] is None  # straight ahead: not asked


def test_video_skills_on_a_known_path():
    xs = [-0.2, 0.0, 0.2]
    ctx = make_ctx(
        [
            ("cube", "red", "medium", (xs[0], 0.0)),
            ("sphere", "blue", "medium", (xs[1], 0.05)),
            ("cylinder", "green", "medium", (xs[2], -0.05)),
        ]
    )
    try:
        frames = []
        for k, x in enumerate(
            np.linspace(-0.35, 0.35, 6)
        ):  # slide to the right, looking at the table from close by
            pose = Pose((float(x), -0.35, 0.25), (float(x), 0.0, 0.0), fovy=30.0)
            frames.append(ctx.view(f"path_{k}", pose, depth=False))
        ctx.cache["path"] = (frames, 0.7)
        order = run_skill("appearance_order", ctx, seeds=3)[0]
        assert order.gt["order"] == sorted(
            order.gt["order"], key=lambda n: ["red cube", "blue ball", "green cylinder"].index(n)
        )
        assert len(order.gt["order"]) >= 2
        assert run_skill("video_count", ctx, seeds=1)[0].gt["value"] == 3
        for s in run_skill("travel_distance", ctx, seeds=4):
            assert s.gt["value"] == (0.7 if s.gt["unit"] == "m" else 70.0)
        pos = {
            "red cube": np.array([xs[0], 0.0]),
            "blue ball": np.array([xs[1], 0.05]),
            "green cylinder": np.array([xs[2], -0.05]),
        }
        for s in run_skill("egocentric_direction", ctx, seeds=20):
            a, b, c = (pos[n] for n in s.meta["objects"])
            f, v = b - a, c - a
            assert s.core == ("left" if f[0] * v[1] - f[1] * v[0] > 0 else "right")
    finally:
        ctx.scene.close()


# -- ssrl
# -------------------------------------------------------------------------------------------------------
def test_patch_shuffle_and_flip_invert_to_the_original(ctx_two):
    orig = patches(ctx_two.view("main").rgb)
    for s in run_skill("patch_shuffle", ctx_two, seeds=3):
        shown = patches(s.images[0])
        for pos, tok in enumerate(s.gt["order"]):
            assert np.array_equal(shown[pos], orig[int(tok) - 1])
        assert s.formats == ("boxed",)
    for s in run_skill("patch_flip", ctx_two, seeds=6):
        k, how = s.core.split()
        tiles = patches(s.images[0])
        fixed = tiles[int(k) - 1][:, ::-1] if how == "horizontal" else tiles[int(k) - 1][::-1]
        assert np.array_equal(fixed, orig[int(k) - 1])


def test_crop_inpainting_true_candidate_matches_the_masked_region(ctx_two):
    rgb = ctx_two.view("main").rgb
    for s in run_skill("crop_inpainting", ctx_two, seeds=4):
        x1, y1, x2, y2 = s.meta["region"]
        assert (s.images[0][y1:y2, x1:x2] == 128).all()
        assert s.meta["candidates"][s.gt["index"]] == "true"
        from spatial_backbone.data.draw import resize

        cell = 56
        r, c = divmod(s.gt["index"], 2)
        tile = s.images[1][r * cell + 2 + 12 : (r + 1) * cell - 2, c * cell + 2 : (c + 1) * cell - 2]
        ref = resize(rgb[y1:y2, x1:x2], cell - 4)[12:]
        assert np.abs(tile.astype(int) - ref).mean() < 3


def test_depth_ordering_and_marked_regions(ctx_two):
    depth = ctx_two.view("main").depth
    for s in run_skill("depth_ordering", ctx_two, seeds=5):
        by_label = {p[3]: depth[int(p[1]), int(p[0])] for p in s.meta["points"]}
        ds = [by_label[t] for t in s.gt["order"]]
        assert all(b - a >= 0.05 for a, b in zip(ds, ds[1:], strict=False))
    ctx = make_ctx([("cube", "red", "medium", (-0.15, 0.0)), ("sphere", "blue", "medium", (0.15, 0.0))])
    try:
        for s in run_skill("relative_3d_marked", ctx, seeds=6):
            assert s.core == ("left" if s.meta["objects"][0] == "red cube" else "right")
    finally:
        ctx.scene.close()


# -- grounding
# --------------------------------------------------------------------------------------------------
GROUND = [
    ("cube", "red", "medium", (-0.15, -0.05)),
    ("cube", "blue", "medium", (0.12, 0.1)),
    ("sphere", "green", "medium", (0.0, -0.12)),
]
# every unique phrase for this layout -> the object it names
RESOLVE = {
    "red cube": "red cube",
    "blue cube": "blue cube",
    "green ball": "green ball",
    "ball": "green ball",
    "red object": "red cube",
    "blue object": "blue cube",
    "green object": "green ball",
    "leftmost cube": "red cube",
    "rightmost cube": "blue cube",
    "nearest cube": "red cube",
    "cube nearest to the camera": "red cube",
    "cube farthest from the camera": "blue cube",
}


@pytest.fixture
def ctx_ground():
    ctx = make_ctx(GROUND)
    yield ctx
    ctx.scene.close()


def test_grounding_point_box_choice_name_the_right_object(ctx_ground):
    v = ctx_ground.view("main")
    names = [ctx_ground.label(i) for i in range(3)]
    kinds = set()
    for s in run_skill("grounding_point", ctx_ground, seeds=30):
        target = names.index(RESOLVE[s.gt["label"]])
        assert s.meta["objects"] == [names[target]]
        assert v.seg[s.gt["point"][1], s.gt["point"][0]] == target
        kinds.add(s.meta["expression"])
    assert len(kinds) >= 3  # relational / shape / color expressions are used, not only color + shape
    for s in run_skill("grounding_box", ctx_ground, seeds=10):
        assert s.gt["bbox"] == v.box2d(names.index(RESOLVE[s.gt["label"]]))
    for s in run_skill("grounding_choice", ctx_ground, seeds=10):
        phrase = s.question.split("is the ")[1].split("?")[0]
        assert s.meta["objects"][s.gt["index"]] == RESOLVE[phrase]


# -- rendering
# --------------------------------------------------------------------------------------------------
def test_data_scene_renders_identically_to_scene():
    objs = tuple(object_spec(s, c, z, xy) for s, c, z, xy in TWO)
    spec = SceneSpec(objects=objs, image_size=112, front_eye=FRONT.eye, front_target=FRONT.target)
    with Scene(spec, with_robot=False) as a, DataScene(spec) as b:
        assert np.array_equal(a.render_rgb(), b.render_rgb())
        assert np.array_equal(a.render_depth(), b.render_depth())
        assert np.array_equal(a.render_segmentation(), b.render_segmentation())


def test_formats_registry_names_reward_families():
    assert {f.reward for f in FORMATS.values()} == {"vst", "spatialthinker", "ssrl"}
