"""Self-supervised pretext skills after Spatial-SSRL: the answer comes from the image (and its depth) itself.

Five tasks (DESIGN.md section 3): 2x2 patch shuffle (answer: the permutation), patch flip (which patch,
horizontal or vertical), crop inpainting (the true patch among 4 candidates: the true crop, a rotated crop, an
interior zoom and an enlarged context), depth ordering of 3 marked points in separated depth bands (near to
far), and relative 3D position of two marked regions (left/right/front/back from the camera). Items are
written in the Spatial-SSRL format, `<think>...</think>` then `\\boxed{answer}`, and checked by the `ssrl`
reward family. Patches are numbered 1-4 in reading order (1 top-left, 2 top-right, 3 bottom-left, 4
bottom-right).
"""

from __future__ import annotations

import numpy as np

from spatial_backbone.data.context import SceneContext
from spatial_backbone.data.draw import grid_2x2, mark_boxes, mark_points, mask_square, resize
from spatial_backbone.data.formats import choice_gt, ordering_gt, word_gt
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills.common import cam_xyz, pick, question, sample, views_meta
from spatial_backbone.data.skills.registry import register_skill
from spatial_backbone.data.templates import FLIP_ANSWERS, REGION_DIRECTIONS

FAMILY = "ssrl"
BOXED = ("boxed",)
DEPTH_GAP = 0.05  # m between marked points
REGION_MARGIN = 0.04  # m on the dominant axis
PATCH_NAMES = ["top-left", "top-right", "bottom-left", "bottom-right"]


def patches(img: np.ndarray) -> list[np.ndarray]:
    """The 4 quadrants [H/2, W/2, 3] in reading order."""
    h, w = img.shape[0] // 2, img.shape[1] // 2
    return [img[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in (0, 1) for c in (0, 1)]


def assemble(tiles: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)


@register_skill("patch_shuffle", FAMILY, "ordering")
def patch_shuffle(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    perm = rng.permutation(4)
    while (perm == np.arange(4)).all():
        perm = rng.permutation(4)
    tiles = patches(v.rgb)
    shuffled = assemble([tiles[int(p)] for p in perm])  # position i shows original patch perm[i]
    order = [str(int(p) + 1) for p in perm]
    chain = " ".join(
        f"Position {i + 1} shows the original {PATCH_NAMES[int(p)]} patch." for i, p in enumerate(perm)
    )
    return [
        sample(
            ctx,
            "patch_shuffle",
            question("patch_shuffle", rng),
            ordering_gt(order, ["1", "2", "3", "4"]),
            [shuffled],
            answer_type="ordering",
            chain=chain,
            formats=BOXED,
            meta={"views": views_meta(v)},
        )
    ]


@register_skill("patch_flip", FAMILY, "word")
def patch_flip(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    tiles = patches(v.rgb)
    k, horizontal = int(rng.integers(4)), bool(rng.random() < 0.5)
    flipped = tiles[k][:, ::-1] if horizontal else tiles[k][::-1]
    if np.abs(flipped.astype(int) - tiles[k]).mean() < 2.0:  # a symmetric patch: the flip is invisible
        return []
    tiles[k] = flipped
    word = f"{k + 1} {'horizontal' if horizontal else 'vertical'}"
    chain = (
        f"The {PATCH_NAMES[k]} patch does not continue its neighbours; mirrored "
        f"{'left-right' if horizontal else 'top-bottom'} it would."
    )
    return [
        sample(
            ctx,
            "patch_flip",
            question("patch_flip", rng),
            word_gt(word, FLIP_ANSWERS),
            [np.ascontiguousarray(assemble(tiles))],
            answer_type="word",
            chain=chain,
            formats=BOXED,
            meta={"views": views_meta(v)},
        )
    ]


@register_skill("crop_inpainting", FAMILY, "choice")
def crop_inpainting(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    size = v.rgb.shape[0]
    s = size // 4
    for _ in range(10):
        x, y = (int(a) for a in rng.integers(s // 2, size - 3 * s // 2, 2))
        crop = v.rgb[y : y + s, x : x + s]
        if crop.std() > 12:  # textured enough to tell candidates apart
            break
    else:
        return []
    pad = s // 3
    context = v.rgb[max(0, y - pad) : y + s + pad, max(0, x - pad) : x + s + pad]
    interior = crop[s // 5 : s - s // 5, s // 5 : s - s // 5]
    rotated = np.rot90(crop, k=int(rng.integers(1, 4)))
    cands = [crop, np.ascontiguousarray(rotated), resize(interior, s), resize(context, s)]
    kinds = ["true", "rotated", "interior", "enlarged"]
    order = rng.permutation(4)
    grid = grid_2x2([cands[int(j)] for j in order], size // 2, list("ABCD"))
    correct = int(np.flatnonzero(order == 0)[0])
    chain = (
        "The masked region must continue the surrounding edges at the same scale and orientation; the other "
        f"candidates are rotated, zoomed in or zoomed out. Candidate {'ABCD'[correct]} fits."
    )
    return [
        sample(
            ctx,
            "crop_inpainting",
            question("crop_inpainting", rng, options=PATCH_NAMES),
            choice_gt(PATCH_NAMES, correct),
            [mask_square(v.rgb, x, y, s), grid],
            answer_type="choice",
            chain=chain,
            formats=BOXED,
            meta={
                "region": [x, y, x + s, y + s],
                "candidates": [kinds[int(j)] for j in order],
                "views": views_meta(v),
            },
        )
    ]


@register_skill("depth_ordering", FAMILY, "ordering")
def depth_ordering(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    m = 8
    d = v.depth[m:-m, m:-m]
    on_table = v.world_points()[m:-m, m:-m, 2] > -0.005  # table top and objects, not the floor
    if on_table.sum() < 30:
        return []
    lo, hi = np.quantile(d[on_table], [0.05, 0.95])
    bands = np.linspace(lo, hi, 4)  # three depth bands
    pts: list[tuple[float, float, float]] = []
    for b in range(3):
        ys, xs = np.nonzero(on_table & (d >= bands[b]) & (d < bands[b + 1]))
        if len(xs) == 0:
            return []
        for _ in range(20):
            j = int(rng.integers(len(xs)))
            u, w, z = xs[j] + m + 0.5, ys[j] + m + 0.5, float(d[ys[j], xs[j]])
            if all(abs(z - p[2]) >= DEPTH_GAP and np.hypot(u - p[0], w - p[1]) >= 12 for p in pts):
                pts.append((u, w, z))
                break
        else:
            return []
    labels_of = rng.permutation(3)  # point b (near -> far) gets label labels_of[b] + 1
    shown = sorted(range(3), key=lambda b: labels_of[b])
    img = mark_points(v.rgb, [pts[b][:2] for b in shown], [str(labels_of[b] + 1) for b in shown])
    order = [str(labels_of[b] + 1) for b in range(3)]
    chain = (
        " ".join(f"Point {labels_of[b] + 1} is {pts[b][2]:.2f} m away." for b in shown)
        + " Nearest to farthest: "
        + ", ".join(order)
        + "."
    )
    return [
        sample(
            ctx,
            "depth_ordering",
            question("depth_ordering", rng),
            ordering_gt(order, ["1", "2", "3"]),
            [img],
            answer_type="ordering",
            chain=chain,
            formats=BOXED,
            meta={
                "points": [
                    [round(p[0], 1), round(p[1], 1), round(p[2], 4), str(labels_of[b] + 1)]
                    for b, p in enumerate(pts)
                ],
                "views": views_meta(v),
            },
        )
    ]


@register_skill("relative_3d_marked", FAMILY, "word")
def relative_3d_marked(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    v = ctx.view("main")
    if len(v.visible) < 2:
        return []
    a, b = pick(rng, v.visible, 2)
    d = cam_xyz(ctx, v, a) - cam_xyz(ctx, v, b)  # region 1 - region 2, camera frame
    ax = 0 if abs(d[0]) >= abs(d[2]) else 2
    if abs(d[ax]) < REGION_MARGIN or abs(d[ax]) < 1.5 * abs(d[2 - ax]):
        return []
    word = ("left" if d[0] < 0 else "right") if ax == 0 else ("front" if d[2] < 0 else "back")
    img = mark_boxes(v.rgb, [v.box2d(a), v.box2d(b)], ["1", "2"])
    chain = (
        f"Region 1 is at X = {d[0]:+.2f} m and Z = {d[2]:+.2f} m relative to region 2 in the camera frame, "
        f"so it is to the {word}."
    )
    return [
        sample(
            ctx,
            "relative_3d_marked",
            question("relative_3d_marked", rng),
            word_gt(word, REGION_DIRECTIONS),
            [img],
            answer_type="word",
            chain=chain,
            formats=BOXED,
            objects=[a, b],
            meta={"offset_cam": [round(float(x), 4) for x in d], "views": views_meta(v)},
        )
    ]
