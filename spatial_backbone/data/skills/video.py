"""Video skills: frames along a camera path (VSI-Bench-like questions of VST-P's video group: appearance
order, object count, relative direction, route/travelled distance; VST arXiv 2511.05491).

Design: the path is a straight sideways track (a "truck" shot): the camera keeps its viewing direction and
slides `path_length` metres along its own right axis, rendering `path_frames` frames with a narrow field of
view from close by, so objects enter the view one after another. The frames are given to the model as a
sequence of images ("Frame 1..N"); every frame records its pose in `meta`. The path is sampled once per scene
and shared by the video skills; its central pose obeys the split's camera rule (held-out bands only in
`shifted`).
"""

from __future__ import annotations

import math

import numpy as np

from spatial_backbone.data.context import Pose, SceneContext, View, in_shifted_band, orbit_pose
from spatial_backbone.data.formats import number_gt, ordering_gt, word_gt
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills.common import pick, question, sample, views_meta
from spatial_backbone.data.skills.registry import register_skill
from spatial_backbone.data.templates import EGO_DIRECTIONS, UNITS

FAMILY = "video"
PATH_FOVY = 30.0
PATH_DISTANCE = (0.35, 0.5)
EGO_MIN_ANGLE = 25.0  # degrees away from straight ahead / behind


def path_views(ctx: SceneContext, rng: np.random.Generator) -> tuple[list[View], float] | None:
    """The shared camera path: (frames, travelled metres), or None when no path fits the split's band rule."""
    if "path" in ctx.cache:
        return ctx.cache["path"]
    cfg = ctx.camera_cfg
    for _ in range(20):
        az, el = float(rng.uniform(*cfg.azimuth)), float(rng.uniform(*cfg.elevation))
        if in_shifted_band(cfg, az, el) == ctx.shifted:
            break
    else:
        ctx.cache["path"] = None
        return None
    centre = orbit_pose(
        az, el, float(rng.uniform(*PATH_DISTANCE)), (float(rng.uniform(-0.05, 0.05)), 0.0, 0.0)
    )
    eye, target = np.asarray(centre.eye), np.asarray(centre.target)
    fwd = target - eye
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    length = float(rng.uniform(*cfg.path_length))
    sign = 1.0 if rng.random() < 0.5 else -1.0  # slide to the camera's right or left
    frames = []
    for k, s in enumerate(np.linspace(-length / 2, length / 2, cfg.path_frames) * sign):
        pose = Pose(
            tuple(float(x) for x in eye + s * right),
            tuple(float(x) for x in target + s * right),
            az,
            el,
            centre.distance,
            PATH_FOVY,
        )
        frames.append(ctx.view(f"path_{k}", pose, depth=False))
    ctx.cache["path"] = (frames, length)
    return ctx.cache["path"]


def first_appearance(frames: list[View]) -> dict[int, int]:
    """Object index -> first frame (0-based) in which it is visible."""
    first: dict[int, int] = {}
    for k, f in enumerate(frames):
        for i in f.visible:
            first.setdefault(i, k)
    return first


def _frames_meta(frames: list[View]) -> list[dict]:
    return views_meta(*frames)


@register_skill("appearance_order", FAMILY, "ordering")
def appearance_order(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = path_views(ctx, rng)
    if got is None:
        return []
    frames, _ = got
    first = first_appearance(frames)
    by_frame: dict[int, list[int]] = {}
    for i, k in first.items():
        by_frame.setdefault(k, []).append(i)
    if len(by_frame) < 2:
        return []
    # one object per distinct first frame, so the order is unambiguous
    chosen = [pick(rng, objs, 1)[0] for _, objs in sorted(by_frame.items())][:4]
    names = [ctx.label(i) for i in chosen]
    asked = [names[int(j)] for j in rng.permutation(len(names))]
    chain = " ".join(f"The {ctx.label(i)} first appears in frame {first[i] + 1}." for i in chosen)
    return [
        sample(
            ctx,
            "appearance_order",
            question("appearance_order", rng, a=", ".join(asked)),
            ordering_gt(names),
            [f.rgb for f in frames],
            answer_type="ordering",
            chain=chain,
            objects=chosen,
            meta={"first_frame": [first[i] + 1 for i in chosen], "views": _frames_meta(frames)},
        )
    ]


@register_skill("video_count", FAMILY, "number")
def video_count(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = path_views(ctx, rng)
    if got is None:
        return []
    frames, _ = got
    seen = sorted(first_appearance(frames))
    if not seen:
        return []
    chain = f"Across the frames I see {', '.join('the ' + ctx.label(i) for i in seen)}: {len(seen)} objects."
    return [
        sample(
            ctx,
            "video_count",
            question("video_count", rng),
            number_gt(len(seen), "", 0),
            [f.rgb for f in frames],
            answer_type="number",
            chain=chain,
            objects=seen,
            meta={"views": _frames_meta(frames)},
        )
    ]


def ego_direction(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[str | None, float]:
    """Standing at a facing b (table plane), is c to the left or right? None when c is within EGO_MIN_ANGLE of
    straight ahead or behind. Returns (word, signed angle in degrees, positive = left)."""
    f, v = (b - a)[:2], (c - a)[:2]
    ang = math.degrees(math.atan2(f[0] * v[1] - f[1] * v[0], float(f @ v)))
    if abs(ang) < EGO_MIN_ANGLE or abs(ang) > 180 - EGO_MIN_ANGLE:
        return None, ang
    return ("left" if ang > 0 else "right"), ang


@register_skill("egocentric_direction", FAMILY, "word")
def egocentric_direction(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = path_views(ctx, rng)
    if got is None:
        return []
    frames, _ = got
    seen = sorted(first_appearance(frames))
    if len(seen) < 3:
        return []
    for _ in range(4):
        a, b, c = pick(rng, seen, 3)
        word, ang = ego_direction(*(ctx.objects[i].pos for i in (a, b, c)))
        if word is not None:
            break
    else:
        return []
    la, lb, lc = (ctx.label(i) for i in (a, b, c))
    chain = (
        f"Facing from the {la} towards the {lb}, the {lc} is {abs(ang):.0f} degrees to the "
        f"{'left (counterclockwise)' if ang > 0 else 'right (clockwise)'}, so it is on my {word}."
    )
    return [
        sample(
            ctx,
            "egocentric_direction",
            question("egocentric_direction", rng, a=la, b=lb, c=lc),
            word_gt(word, EGO_DIRECTIONS),
            [f.rgb for f in frames],
            answer_type="word",
            chain=chain,
            objects=[a, b, c],
            meta={"angle_deg": round(ang, 2), "views": _frames_meta(frames)},
        )
    ]


@register_skill("travel_distance", FAMILY, "number")
def travel_distance(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = path_views(ctx, rng)
    if got is None:
        return []
    frames, length = got
    word = "meters" if rng.random() < 0.5 else "centimeters"
    sym, scale = UNITS[word]
    chain = (
        f"The camera slides sideways at a constant heading over {len(frames)} frames, from the first to the "
        f"last pose: {length:.2f} m."
    )
    return [
        sample(
            ctx,
            "travel_distance",
            question("travel_distance", rng, unit=word),
            number_gt(length * scale, sym, 2 if sym == "m" else 1),
            [f.rgb for f in frames],
            answer_type="number",
            chain=chain,
            meta={"length_m": round(length, 4), "views": _frames_meta(frames)},
        )
    ]
