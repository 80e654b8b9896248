"""Single-view skills: one rendered image, questions answered from the simulator's exact ground truth.

Covers VST-P's single-image perception groups (depth comparison, distance, measurement; VST arXiv 2511.05491),
SpatialThinker's categories (relation, size, depth, distance, count, existence; arXiv 2511.07403) and the
structured outputs both papers train on: 2D boxes in pixels, 3D boxes in the camera frame in VST's JSON format
and SpatialThinker scene graphs.

Conventions: "closer to the camera" compares camera-frame Z (planar depth) of object centres; "from the
camera's view" relations use camera-frame axes (X right, Y down, Z forward); distances are between object
centres in metres; sizes are full bounding-box extents; "taller" compares the top of the bounding box.
Questions whose answer
would hinge on a small difference (below the margins here) are not asked: the skill returns [].
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from spatial_backbone.data.context import SceneContext
from spatial_backbone.data.formats import (
    boxes3d_gt,
    choice_gt,
    graph_gt,
    number_gt,
    word_gt,
)
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills.common import (
    cam_xyz,
    graph,
    observe,
    pick,
    question,
    sample,
    top_z,
    views_meta,
    volume,
)
from spatial_backbone.data.skills.registry import register_skill
from spatial_backbone.data.templates import ABOVE_BELOW, LEFT_RIGHT, RELATIONS_3D, UNITS, YES_NO

DEPTH_MARGIN = 0.03  # m
REL3D_MARGIN = 0.03  # m
PIXEL_MARGIN = 4.0  # px at any image size
SIZE_RATIO = 1.5
HEIGHT_MARGIN = 0.008  # m
CLOSEST_MARGIN = 0.02  # m
FAMILY = "single_view"
REASONED = ("plain", "think", "spatialthinker")


def _pair(ctx: SceneContext, rng: np.random.Generator, min_visible: int = 2) -> list[int] | None:
    vis = ctx.view("main").visible
    return pick(rng, vis, 2) if len(vis) >= min_visible else None


def _choice_between(ctx: SceneContext, rng: np.random.Generator, pair: list[int], correct: int) -> tuple:
    """Options = the two labels in random order; returns (options, index of `correct`)."""
    order = list(pair) if rng.random() < 0.5 else list(pair[::-1])
    return [ctx.label(i) for i in order], order.index(correct)


def _pair_choice(
    ctx: SceneContext,
    rng: np.random.Generator,
    skill: str,
    pair: list[int],
    winner: int,
    explain: tuple[str, dict],
) -> list[Sample]:
    """A two-option choice between `pair` answered by `winner`, on the main view (the comparison skills).
    `explain` = (the ground-truth chain of thought, skill-specific metadata)."""
    v = ctx.view("main")
    options, k = _choice_between(ctx, rng, pair, winner)
    chain, meta = explain
    return [
        sample(
            ctx,
            skill,
            question(skill, rng, options=options),
            choice_gt(options, k),
            [v.rgb],
            answer_type="choice",
            chain=chain,
            graph=graph(ctx, v, pair),
            observe=observe(ctx, v),
            formats=REASONED,
            objects=pair,
            meta={**meta, "views": views_meta(v)},
        )
    ]


def _unit(rng: np.random.Generator) -> tuple[str, str, float, int]:
    """(word, symbol, scale from metres, decimals)."""
    word = "meters" if rng.random() < 0.5 else "centimeters"
    sym, scale = UNITS[word]
    return word, sym, scale, (2 if sym == "m" else 1)


@register_skill("depth_comparison", FAMILY, "choice")
def depth_comparison(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    za, zb = (float(cam_xyz(ctx, v, i)[2]) for i in pair)
    if abs(za - zb) < DEPTH_MARGIN:
        return []
    near = pair[0] if za < zb else pair[1]
    a, b = (ctx.label(i) for i in pair)
    chain = (
        f"The {a} is at depth {za:.2f} m and the {b} at {zb:.2f} m, so the {ctx.label(near)} is closer "
        f"to the camera."
    )
    return _pair_choice(
        ctx, rng, "depth_comparison", pair, near, (chain, {"depths": [round(za, 4), round(zb, 4)]})
    )


@register_skill("relative_position_2d", FAMILY, "word")
def relative_position_2d(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    (ua, va), (ub, vb) = (v.centroid(i) for i in pair)
    variant = int(rng.integers(2))
    diff = (ua - ub) if variant == 0 else (va - vb)
    if abs(diff) < PIXEL_MARGIN:
        return []
    vocab = LEFT_RIGHT if variant == 0 else ABOVE_BELOW
    word = vocab[0] if diff < 0 else vocab[1]
    a, b = (ctx.label(i) for i in pair)
    axis = "column" if variant == 0 else "row"
    chain = (
        f"In the image the {a} is centred at {axis} {ua if variant == 0 else va:.0f} and the {b} at "
        f"{ub if variant == 0 else vb:.0f}, so the {a} is {word} of the {b}."
    )
    return [
        sample(
            ctx,
            "relative_position_2d",
            question("relative_position_2d", rng, variant, a=a, b=b),
            word_gt(word, vocab),
            [v.rgb],
            answer_type="word",
            chain=chain,
            objects=pair,
            meta={
                "centroids": [[round(ua, 1), round(va, 1)], [round(ub, 1), round(vb, 1)]],
                "views": views_meta(v),
            },
        )
    ]


@register_skill("relative_position_3d", FAMILY, "word")
def relative_position_3d(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    d = cam_xyz(ctx, v, pair[0]) - cam_xyz(ctx, v, pair[1])  # subject - object, camera frame
    axes = [ax for ax in range(3) if abs(d[ax]) >= REL3D_MARGIN]
    if not axes:
        return []
    axis = axes[int(rng.integers(len(axes)))]
    rels = [r for r, (ax, _) in RELATIONS_3D.items() if ax == axis]
    rel = rels[int(rng.integers(2))]
    holds = RELATIONS_3D[rel][1] * d[axis] > 0
    a, b = (ctx.label(i) for i in pair)
    name = "XYZ"[axis]
    chain = (
        f"In the camera frame the {a} is at {name} = {d[axis] + cam_xyz(ctx, v, pair[1])[axis]:.2f} m and "
        f"the {b} at {name} = {cam_xyz(ctx, v, pair[1])[axis]:.2f} m, so the {a} is "
        f"{'' if holds else 'not '}{rel} the {b}."
    )
    return [
        sample(
            ctx,
            "relative_position_3d",
            question("relative_position_3d", rng, a=a, b=b, rel=rel),
            word_gt("yes" if holds else "no", YES_NO),
            [v.rgb],
            answer_type="word",
            chain=chain,
            graph=graph(ctx, v, pair),
            observe=observe(ctx, v),
            formats=REASONED,
            objects=pair,
            meta={"relation": rel, "offset_cam": [round(float(x), 4) for x in d], "views": views_meta(v)},
        )
    ]


@register_skill("distance", FAMILY, "number")
def distance(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    pa, pb = (ctx.objects[i].pos for i in pair)
    dist = float(np.linalg.norm(pa - pb))
    word, sym, scale, dec = _unit(rng)
    a, b = (ctx.label(i) for i in pair)
    chain = (
        f"The {a} is at ({pa[0]:.2f}, {pa[1]:.2f}, {pa[2]:.2f}) m and the {b} at ({pb[0]:.2f}, "
        f"{pb[1]:.2f}, {pb[2]:.2f}) m, so they are {dist:.2f} m apart."
    )
    return [
        sample(
            ctx,
            "distance",
            question("distance", rng, a=a, b=b, unit=word),
            number_gt(dist * scale, sym, dec),
            [v.rgb],
            answer_type="number",
            chain=chain,
            objects=pair,
            meta={"distance_m": round(dist, 4), "views": views_meta(v)},
        )
    ]


@register_skill("object_size", FAMILY, "number")
def object_size(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    if not v.visible:
        return []
    i = pick(rng, v.visible, 1)[0]
    full = 2 * ctx.objects[i].size
    variant = int(rng.integers(2))
    value = float(full[2] if variant == 0 else full.max())
    word, sym, scale, dec = _unit(rng)
    what = "height" if variant == 0 else "longest side"
    chain = (
        f"The {ctx.label(i)} measures {full[0]:.3f} x {full[1]:.3f} x {full[2]:.3f} m, so its {what} is "
        f"{value:.3f} m."
    )
    return [
        sample(
            ctx,
            "object_size",
            question("object_size", rng, variant, a=ctx.label(i), unit=word),
            number_gt(value * scale, sym, dec + 1),
            [v.rgb],
            answer_type="number",
            chain=chain,
            objects=[i],
            meta={"size_m": [round(float(x), 4) for x in full], "views": views_meta(v)},
        )
    ]


@register_skill("size_comparison", FAMILY, "choice")
def size_comparison(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    va, vb = (volume(ctx, i) for i in pair)
    if max(va, vb) < SIZE_RATIO * min(va, vb):
        return []
    big = pair[0] if va > vb else pair[1]
    a, b = (ctx.label(i) for i in pair)
    chain = (
        f"The {a}'s bounding box holds {va * 1e6:.0f} cubic cm and the {b}'s {vb * 1e6:.0f} cubic cm, so "
        f"the {ctx.label(big)} is larger."
    )
    return _pair_choice(ctx, rng, "size_comparison", pair, big, (chain, {"volumes_m3": [va, vb]}))


@register_skill("height_comparison", FAMILY, "choice")
def height_comparison(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    ctx.view("main")
    pair = _pair(ctx, rng)
    if pair is None:
        return []
    ha, hb = (top_z(ctx, i) for i in pair)
    if abs(ha - hb) < HEIGHT_MARGIN:
        return []
    tall = pair[0] if ha > hb else pair[1]
    a, b = (ctx.label(i) for i in pair)
    chain = (
        f"The top of the {a} is {ha:.3f} m above the table and the {b}'s {hb:.3f} m, so the "
        f"{ctx.label(tall)} is taller."
    )
    return _pair_choice(
        ctx, rng, "height_comparison", pair, tall, (chain, {"heights_m": [round(ha, 4), round(hb, 4)]})
    )


@register_skill("counting", FAMILY, "number")
def counting(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    words = sorted({ctx.shape_word(i) for i in v.visible})
    if not words:
        return []
    shape = words[int(rng.integers(len(words)))]
    found = [i for i in v.visible if ctx.shape_word(i) == shape]
    chain = f"I can see {', '.join('the ' + ctx.label(i) for i in found)}: {len(found)} {shape}(s)."
    return [
        sample(
            ctx,
            "counting",
            question("counting", rng, shape=shape),
            number_gt(len(found), "", 0),
            [v.rgb],
            answer_type="number",
            chain=chain,
            objects=found,
            meta={"views": views_meta(v)},
        )
    ]


@register_skill("existence", FAMILY, "word")
def existence(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    from envs.scene import SHAPES

    v = ctx.view("main")
    present = rng.random() < 0.5 or not ctx.absent
    if present:
        if not v.visible:
            return []
        i = pick(rng, v.visible, 1)[0]
        name, objs = ctx.label(i), [i]
    else:
        color, shape = ctx.absent[int(rng.integers(len(ctx.absent)))]
        name, objs = f"{color} {SHAPES[shape].word}", []
    seen = ", ".join(ctx.label(i) for i in v.visible)
    chain = f"The image shows {seen}; {'it includes' if present else 'there is no'} {name}."
    return [
        sample(
            ctx,
            "existence",
            question("existence", rng, a=name),
            word_gt("yes" if present else "no", YES_NO),
            [v.rgb],
            answer_type="word",
            chain=chain,
            graph=graph(ctx, v, v.visible[:4]),
            observe=observe(ctx, v),
            formats=REASONED,
            objects=objs,
            meta={"asked": name, "views": views_meta(v)},
        )
    ]


@register_skill("closest_object", FAMILY, "choice")
def closest_object(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    if len(v.visible) < 3:
        return []
    ref, *cands = pick(rng, v.visible, min(len(v.visible), 5))
    dists = [float(np.linalg.norm(ctx.objects[c].pos - ctx.objects[ref].pos)) for c in cands]
    order = np.argsort(dists)
    if dists[order[1]] - dists[order[0]] < CLOSEST_MARGIN:
        return []
    options = [ctx.label(c) for c in cands]
    chain = " ".join(
        f"The {ctx.label(c)} is {d:.2f} m from the {ctx.label(ref)}."
        for c, d in zip(cands, dists, strict=True)
    )
    chain += f" The closest is the {options[order[0]]}."
    return [
        sample(
            ctx,
            "closest_object",
            question("closest_object", rng, a=ctx.label(ref), options=options),
            choice_gt(options, int(order[0])),
            [v.rgb],
            answer_type="choice",
            chain=chain,
            graph=graph(ctx, v, [ref, *cands]),
            observe=observe(ctx, v),
            formats=REASONED,
            objects=[ref, *cands],
            meta={"distances_m": [round(d, 4) for d in dists], "views": views_meta(v)},
        )
    ]


@register_skill("box_2d", FAMILY, "box2d")
def box_2d(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    from spatial_backbone.data.formats import box2d_gt

    v = ctx.view("main")
    if not v.visible:
        return []
    i = pick(rng, v.visible, 1)[0]
    box = v.box2d(i)
    return [
        sample(
            ctx,
            "box_2d",
            question("box_2d", rng, a=ctx.label(i)),
            box2d_gt(box, ctx.label(i)),
            [v.rgb],
            answer_type="box2d",
            chain=f"The {ctx.label(i)} spans columns {box[0]}-{box[2]} and rows {box[1]}-{box[3]}.",
            objects=[i],
            meta={"views": views_meta(v)},
        )
    ]


# Object axes written camera-style (x right, y down, z forward): columns are the object's x, -z and y axes, so
# an upright object seen by a level camera has zero pitch/roll and its yaw is the object's yaw.
OBJ_TO_CAMSTYLE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def bbox_3d(ctx: SceneContext, extrinsic: np.ndarray, i: int) -> list[float]:
    """VST box of object i in the camera frame: [x, y, z] centre (m), [x_size, y_size, z_size] full extents
    along the object's camera-style axes (width, height, depth; m) and [pitch, yaw, roll] (rad) with
    R_obj->cam = Rx(pitch) @ Ry(yaw) @ Rz(roll) (intrinsic X-Y-Z about camera axes): for our roll-free
    cameras pitch is the camera tilt, yaw the object's heading and roll ~0."""
    o = ctx.objects[i]
    r_cam = extrinsic[:3, :3] @ o.rot @ OBJ_TO_CAMSTYLE
    centre = extrinsic[:3, :3] @ o.pos + extrinsic[:3, 3]
    pitch, yaw, roll = Rotation.from_matrix(r_cam).as_euler("XYZ")
    full = 2 * np.asarray(o.size)[[0, 2, 1]]
    vals = [*centre, *full]
    return [round(float(x), 3) for x in vals] + [round(float(a), 3) for a in (pitch, yaw, roll)]


@register_skill("boxes_3d", FAMILY, "boxes3d")
def boxes_3d(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    if not v.visible:
        return []
    boxes = [{"label": ctx.label(i), "bbox_3d": bbox_3d(ctx, v.cam.extrinsic, i)} for i in v.visible]
    chain = " ".join(
        f"The {b['label']} is centred {b['bbox_3d'][2]:.2f} m in front of the camera." for b in boxes
    )
    return [
        sample(
            ctx,
            "boxes_3d",
            question("boxes_3d", rng),
            boxes3d_gt(boxes),
            [v.rgb],
            answer_type="boxes3d",
            chain=chain,
            objects=v.visible,
            meta={"views": views_meta(v)},
        )
    ]


@register_skill("scene_graph", FAMILY, "scene_graph")
def scene_graph(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    if len(v.visible) < 2:
        return []
    idxs = v.visible[:4]
    g = graph(ctx, v, idxs)
    return [
        sample(
            ctx,
            "scene_graph",
            question("scene_graph", rng),
            graph_gt(g["objects"], g["relations"]),
            [v.rgb],
            answer_type="scene_graph",
            formats=("plain",),
            objects=idxs,
            meta={"views": views_meta(v)},
        )
    ]
