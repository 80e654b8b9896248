"""Multi-view skills: two images of the same scene from different camera poses (VST-P's multi-image group:
camera motion, correspondence, object-object relation; VST arXiv 2511.05491).

Design: the second view is one camera motion away from the main view (orbit left/right/up/down around the
target, or dolly forward/backward), sampled once per scene and shared by every multi-view skill. Its pose
obeys the split's camera rule (held-out bands only in `shifted`). The motion label is computed from the poses,
not
from the intent: the camera displacement expressed in the *first* camera's frame, by its dominant axis (X:
right/left, Y: down/up, Z: forward/backward).
"""

from __future__ import annotations

import numpy as np

from spatial_backbone.data.context import SceneContext, View, in_shifted_band, orbit_pose
from spatial_backbone.data.draw import mark_points
from spatial_backbone.data.formats import LETTERS, choice_gt, word_gt
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills.common import cam_xyz, pick, question, sample, views_meta
from spatial_backbone.data.skills.registry import register_skill
from spatial_backbone.data.templates import CAMERA_MOTIONS, LEFT_RIGHT

FAMILY = "multi_view"
REL_MARGIN = 0.03  # m
MIN_POINT_SEPARATION = 10.0  # px
OCCLUSION_TOL = 0.01  # m


def motion_label(first: View, second: View) -> tuple[str, np.ndarray]:
    """(direction word, displacement in the first camera's frame) of the camera between two views."""
    c1, c2 = first.cam.position, second.cam.position
    d = first.cam.extrinsic[:3, :3] @ (c2 - c1)  # [3] camera-1 frame
    axis = int(np.argmax(np.abs(d)))
    words = (("left", "right"), ("up", "down"), ("backward", "forward"))[axis]
    return words[int(d[axis] > 0)], d


def second_view(ctx: SceneContext, rng: np.random.Generator) -> View | None:
    """The shared second view (one camera motion from the main view); None if no motion fits the split."""
    if "second" in ctx.cache:
        return ctx.cache["second"]
    ctx.cache["second"] = None
    p, cfg = ctx.main_pose, ctx.camera_cfg
    for _ in range(6):
        kind = CAMERA_MOTIONS[int(rng.integers(len(CAMERA_MOTIONS)))]
        az, el, dist = p.azimuth, p.elevation, p.distance
        step = float(rng.uniform(15, 30))
        if kind in ("left", "right"):
            az += -step if kind == "left" else step  # a larger azimuth moves the camera to its right
        elif kind in ("up", "down"):
            el = float(np.clip(el + (step / 2 if kind == "up" else -step / 2), 10, 85))
        else:
            dist *= float(rng.uniform(0.65, 0.8)) if kind == "forward" else float(rng.uniform(1.25, 1.5))
        if in_shifted_band(cfg, az, el) == ctx.shifted and cfg.azimuth[0] <= az <= cfg.azimuth[1]:
            ctx.cache["second"] = ctx.view("second", orbit_pose(az, el, dist, p.target))
            break
    return ctx.cache["second"]


@register_skill("camera_motion", FAMILY, "word")
def camera_motion(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v1, v2 = ctx.view("main"), second_view(ctx, rng)
    if v2 is None:
        return []
    word, d = motion_label(v1, v2)
    chain = (
        f"Relative to the first camera the second camera is displaced by ({d[0]:.2f}, {d[1]:.2f}, "
        f"{d[2]:.2f}) m along (right, down, forward), so it moved {word}."
    )
    return [
        sample(
            ctx,
            "camera_motion",
            question("camera_motion", rng),
            word_gt(word, CAMERA_MOTIONS),
            [v1.rgb, v2.rgb],
            answer_type="word",
            chain=chain,
            meta={"displacement_cam1": [round(float(x), 4) for x in d], "views": views_meta(v1, v2)},
        )
    ]


def _visible_in(view: View, point: np.ndarray, margin: float = 4.0) -> tuple[float, float] | None:
    """Pixel of a world point in `view` if it is inside the image and not occluded, else None."""
    uv, z = view.project(point)
    u, v = float(uv[0, 0]), float(uv[0, 1])
    if not (margin <= u < view.cam.width - margin and margin <= v < view.cam.height - margin) or z[0] <= 0:
        return None
    if abs(float(view.depth[int(v), int(u)]) - float(z[0])) > OCCLUSION_TOL:
        return None
    return u, v


@register_skill("cross_view_correspondence", FAMILY, "choice")
def cross_view_correspondence(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v1, v2 = ctx.view("main"), second_view(ctx, rng)
    if v2 is None:
        return []
    big = [i for i in v1.visible if v1.pixels(i) >= 15]
    if not big:
        return []
    i = pick(rng, big, 1)[0]
    ys, xs = np.nonzero(v1.seg == i)
    k = int(rng.integers(len(xs)))
    u1, w1 = float(xs[k]) + 0.5, float(ys[k]) + 0.5
    truth = _visible_in(v2, v1.unproject(u1, w1))
    if truth is None:
        return []
    # Distractors: other objects' centroids and random pixels, well separated from the truth and each other.
    cands = [v2.centroid(j) for j in v2.visible if j != i]
    cands += [tuple(rng.uniform(8, v2.cam.width - 8, 2)) for _ in range(12)]
    points = [truth]
    for c in cands:
        if len(points) == 4:
            break
        if all(np.hypot(c[0] - p[0], c[1] - p[1]) >= MIN_POINT_SEPARATION for p in points):
            points.append((float(c[0]), float(c[1])))
    if len(points) < 4:
        return []
    order = rng.permutation(4)
    shown = [points[int(j)] for j in order]
    correct = int(np.flatnonzero(order == 0)[0])
    img1 = mark_points(v1.rgb, [(u1, w1)])
    img2 = mark_points(v2.rgb, shown, list(LETTERS[:4]))
    options = [f"point {LETTERS[j]}" for j in range(4)]
    chain = (
        f"The marked point lies on the {ctx.label(i)}. Its 3D position projects to pixel ({truth[0]:.0f}, "
        f"{truth[1]:.0f}) in the second image, which is point {LETTERS[correct]}."
    )
    return [
        sample(
            ctx,
            "cross_view_correspondence",
            question("cross_view_correspondence", rng, options=options),
            choice_gt(options, correct),
            [img1, img2],
            answer_type="choice",
            chain=chain,
            objects=[i],
            meta={
                "point_1": [round(u1, 1), round(w1, 1)],
                "point_2": [round(truth[0], 1), round(truth[1], 1)],
                "views": views_meta(v1, v2),
            },
        )
    ]


@register_skill("cross_view_relation", FAMILY, "word")
def cross_view_relation(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v1, v2 = ctx.view("main"), second_view(ctx, rng)
    if v2 is None or not v1.visible or not v2.visible:
        return []
    a = pick(rng, v1.visible, 1)[0]
    only_second = [j for j in v2.visible if j != a and j not in v1.visible]
    others = only_second or [j for j in v2.visible if j != a]
    if not others:
        return []
    b = pick(rng, others, 1)[0]
    dx = float(cam_xyz(ctx, v1, b)[0] - cam_xyz(ctx, v1, a)[0])
    if abs(dx) < REL_MARGIN:
        return []
    word = "left" if dx < 0 else "right"
    la, lb = ctx.label(a), ctx.label(b)
    chain = f"In the first camera's frame the {lb} is {abs(dx):.2f} m to the {word} of the {la} along X."
    return [
        sample(
            ctx,
            "cross_view_relation",
            question("cross_view_relation", rng, a=la, b=lb),
            word_gt(word, LEFT_RIGHT),
            [v1.rgb, v2.rgb],
            answer_type="word",
            chain=chain,
            objects=[a, b],
            meta={"dx_cam1": round(dx, 4), "views": views_meta(v1, v2)},
        )
    ]
