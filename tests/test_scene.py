"""Scene builder: sampling, ground truth, cameras (intrinsics/extrinsics/projection) vs rendered pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.scene import (
    COLORS,
    SHAPES,
    Scene,
    SceneSpec,
    box_corners,
    object_spec,
    place_objects,
    sample_scene_spec,
)


@pytest.fixture(scope="module")
def scene():
    objs = (
        object_spec("cube", "red", "large", (-0.12, 0.0)),
        object_spec("sphere", "blue", "medium", (0.1, 0.08)),
        object_spec("cylinder", "green", "medium", (0.12, -0.12)),
        object_spec("plate", "yellow", "medium", (-0.1, 0.15)),
    )
    s = Scene(SceneSpec(objects=objs, image_size=96), with_robot=False)
    yield s
    s.close()


def test_sample_scene_spec_is_seeded_and_non_overlapping():
    a = sample_scene_spec(np.random.default_rng(3), n_objects=5, camera_jitter=0.02)
    b = sample_scene_spec(np.random.default_rng(3), n_objects=5, camera_jitter=0.02)
    c = sample_scene_spec(np.random.default_rng(4), n_objects=5, camera_jitter=0.02)
    assert a == b and a != c
    assert len({o.name for o in a.objects}) == 5
    for i, o in enumerate(a.objects):
        assert o.shape in SHAPES and o.color in COLORS
        for p in a.objects[i + 1 :]:
            assert np.hypot(o.pos[0] - p.pos[0], o.pos[1] - p.pos[1]) >= o.footprint + p.footprint


def test_bad_specs_quote_the_value():
    with pytest.raises(ValueError, match="'hexagon'"):
        object_spec("hexagon", "red")
    with pytest.raises(ValueError, match="'mauve'"):
        object_spec("cube", "mauve")
    with pytest.raises(ValueError, match="unique"):
        SceneSpec(objects=(object_spec("cube", "red"), object_spec("cube", "red")))
    with pytest.raises(ValueError, match="9"):
        SceneSpec(objects=(), image_size=9)
    with pytest.raises(RuntimeError, match="could not place"):
        place_objects(np.random.default_rng(0), [object_spec("bin", c, "large") for c in COLORS], max_tries=5)


def test_objects_ground_truth(scene):
    objs = scene.objects()
    assert [o.name for o in objs] == ["red_cube", "blue_sphere", "green_cylinder", "yellow_plate"]
    cube = objs[0]
    np.testing.assert_allclose(cube.pos, [-0.12, 0.0, 0.03], atol=1e-6)
    np.testing.assert_allclose(cube.size, [0.03, 0.03, 0.03])
    np.testing.assert_allclose(cube.rot @ cube.rot.T, np.eye(3), atol=1e-9)
    assert cube.corners.shape == (8, 3) and cube.aabb.shape == (2, 3)
    np.testing.assert_allclose(cube.aabb[0, 2], 0.0, atol=1e-6)  # resting on the table top (z = 0)
    np.testing.assert_allclose(box_corners(cube.pos, cube.rot, cube.size), cube.corners)


def test_intrinsics_match_fovy_and_optical_axis(scene):
    cam = scene.camera("front")
    assert cam.K[1, 1] == pytest.approx(0.5 * cam.height / math.tan(math.radians(cam.fovy) / 2))
    assert (cam.K[0, 2], cam.K[1, 2]) == (cam.width / 2, cam.height / 2)
    np.testing.assert_allclose(cam.position, scene.spec.front_eye, atol=1e-6)
    uv, z = scene.project(np.asarray(scene.spec.front_target), cam)  # the look-at point is the image centre
    np.testing.assert_allclose(uv[0], [cam.width / 2, cam.height / 2], atol=1e-6)
    assert z[0] == pytest.approx(np.linalg.norm(np.subtract(scene.spec.front_target, scene.spec.front_eye)))
    # OpenCV axes: world right (+x) is image right (larger u); higher (+z) is up in the image (smaller v)
    uv2, _ = scene.project(np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.1]]) + scene.spec.front_target, cam)
    assert uv2[0, 0] > cam.width / 2 and uv2[1, 1] < cam.height / 2


def test_projection_depth_and_segmentation_agree(scene):
    seg = scene.render_segmentation("front")
    depth = scene.render_depth("front")
    rgb = scene.render_rgb("front")
    assert seg.dtype == np.int32 and depth.dtype == np.float32 and rgb.dtype == np.uint8
    assert rgb.shape == (96, 96, 3) and seg.shape == depth.shape == (96, 96)
    assert set(np.unique(seg)) <= {-1, 0, 1, 2, 3}
    for obj in scene.objects():
        uv, z = scene.project(obj.pos + np.array([0, 0, obj.size[2]]) * (obj.shape == "plate"), "front")
        u, v = np.floor(uv[0]).astype(int)
        assert seg[v, u] == obj.index, obj.name
        # the visible surface is in front of the centre, by at most the half diagonal
        assert z[0] - np.linalg.norm(obj.size) - 1e-3 <= depth[v, u] <= z[0] + 1e-3, obj.name
    # a bare table point: rendered depth equals projected depth
    uv, z = scene.project(np.array([0.2, -0.2, 0.0]), "front")
    u, v = np.floor(uv[0]).astype(int)
    assert seg[v, u] == -1
    assert depth[v, u] == pytest.approx(z[0], abs=0.01)


def test_free_camera_pose_and_other_sizes(scene):
    eye, target = (0.4, -0.3, 0.5), (0.05, 0.02, 0.0)
    scene.set_camera_pose("free", eye, target)
    cam = scene.camera("free", width=64, height=48)
    np.testing.assert_allclose(cam.position, eye, atol=1e-6)
    uv, _ = scene.project(np.asarray(target), cam)
    np.testing.assert_allclose(uv[0], [32, 24], atol=1e-6)
    assert scene.render_rgb("free", width=64, height=48).shape == (48, 64, 3)
    top = scene.objects()[0].pos  # straight down: degenerate up vector handled
    scene.set_camera_pose("free", top + np.array([0, 0, 0.5]), top)
    seg = scene.render_segmentation("free")
    assert seg[48, 48] == 0


def test_robot_scene_has_wrist_camera_that_cannot_be_posed():
    spec = sample_scene_spec(np.random.default_rng(0), n_objects=2, image_size=32)
    with Scene(spec, with_robot=True) as s:
        assert {"front", "free", "wrist"} <= set(s.camera_names)
        assert s.render_rgb("wrist").shape == (32, 32, 3)
        with pytest.raises(ValueError, match="'wrist'"):
            s.set_camera_pose("wrist", (0, 0, 1), (0, 0, 0))
        with pytest.raises(KeyError, match="'nope'"):
            s.render_rgb("nope")
        # renderers are handed over to a replacement scene and rebound to its model
        s2 = Scene(sample_scene_spec(np.random.default_rng(1), n_objects=3, image_size=32), recycle=s)
        assert s2.render_rgb("front").shape == (32, 32, 3)
        s2.close()
