"""Grounding skills: name one object among distractors and ask where it is (2D point, 2D box, or which of the
marked candidates). This is the skill the VLA needs most: DESIGN.md section 6 found that a tiny backbone
learns *where* things are quickly but not *which* thing a phrase names; spatial tuning should teach that
binding.

Referring expressions (templates.REFERRING), used only when they pick out exactly one visible object: color +
shape ("red cube"), shape alone ("ball", when there is one ball), color alone ("red object"), and
relational ones among same-shape objects, from the camera's view: leftmost / rightmost (camera X) and nearest
/ farthest (camera Z), with a margin. Harder expressions (not color + shape) are preferred when they exist, so
the model must use distractor-aware cues. Answers follow Qwen2.5-VL's grounding JSON (`point_2d`, `bbox_2d`,
pixels); a point is correct when it falls in the object's visible box.
"""

from __future__ import annotations

import numpy as np

from spatial_backbone.data.context import SceneContext, View
from spatial_backbone.data.draw import mark_points
from spatial_backbone.data.formats import LETTERS, box2d_gt, choice_gt, point_gt
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills.common import cam_xyz, pick, question, sample, views_meta
from spatial_backbone.data.skills.registry import register_skill
from spatial_backbone.data.templates import REFERRING

FAMILY = "grounding"
REL_MARGIN = 0.02  # m between the extreme object and the runner-up
MIN_PIXELS = 12


def referring_expressions(ctx: SceneContext, view: View, t: int) -> dict[str, str]:
    """Every expression kind (REFERRING key) that names object `t` uniquely among the visible objects."""
    vis = view.visible
    o = ctx.objects[t]
    word = ctx.shape_word(t)
    out = {"color_shape": REFERRING["color_shape"].format(c=o.color, s=word)}
    same_shape = [i for i in vis if ctx.shape_word(i) == word]
    if len(same_shape) == 1:
        out["shape"] = REFERRING["shape"].format(s=word)
    if sum(ctx.objects[i].color == o.color for i in vis) == 1:
        out["color"] = REFERRING["color"].format(c=o.color)
    if len(same_shape) >= 2:
        for kind, axis, sign in (
            ("leftmost", 0, 1),
            ("rightmost", 0, -1),
            ("nearest", 2, 1),
            ("farthest", 2, -1),
        ):
            vals = {i: sign * float(cam_xyz(ctx, view, i)[axis]) for i in same_shape}
            best, second = sorted(vals.values())[:2]
            if vals[t] == best and second - best >= REL_MARGIN:
                out[kind] = REFERRING[kind].format(s=word)
    return out


def _target(ctx: SceneContext, rng: np.random.Generator) -> tuple[View, int, str, str] | None:
    """(view, target, expression kind, phrase): a harder-than-color+shape phrase when one exists."""
    v = ctx.view("main")
    vis = [i for i in v.visible if v.pixels(i) >= MIN_PIXELS]
    if len(v.visible) < 2 or not vis:
        return None
    t = pick(rng, vis, 1)[0]
    exprs = referring_expressions(ctx, v, t)
    hard = [k for k in exprs if k != "color_shape"]
    kind = hard[int(rng.integers(len(hard)))] if hard and rng.random() < 0.75 else "color_shape"
    return v, t, kind, exprs[kind]


def _chain(ctx: SceneContext, v: View, t: int, kind: str, phrase: str) -> str:
    others = ", ".join(ctx.label(i) for i in v.visible if i != t)
    return f"The {phrase} ({kind.replace('_', ' ')}) is the {ctx.label(t)}; the others are the {others}."


def _nearest_mask_pixel(v: View, t: int) -> tuple[float, float]:
    """The mask pixel centre closest to the centroid (inside the object even for concave masks)."""
    u, w = v.centroid(t)
    ys, xs = np.nonzero(v.seg == t)
    j = int(np.argmin((xs + 0.5 - u) ** 2 + (ys + 0.5 - w) ** 2))
    return float(xs[j]) + 0.5, float(ys[j]) + 0.5


@register_skill("grounding_point", FAMILY, "point")
def grounding_point(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = _target(ctx, rng)
    if got is None:
        return []
    v, t, kind, phrase = got
    pt = _nearest_mask_pixel(v, t)
    chain = _chain(ctx, v, t, kind, phrase) + f" Its centre is at pixel ({pt[0]:.0f}, {pt[1]:.0f})."
    return [
        sample(
            ctx,
            "grounding_point",
            question("grounding_point", rng, a=phrase),
            point_gt(pt, v.box2d(t), phrase),
            [v.rgb],
            answer_type="point",
            chain=chain,
            objects=[t],
            meta={"expression": kind, "views": views_meta(v)},
        )
    ]


@register_skill("grounding_box", FAMILY, "box2d")
def grounding_box(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = _target(ctx, rng)
    if got is None:
        return []
    v, t, kind, phrase = got
    box = v.box2d(t)
    chain = (
        _chain(ctx, v, t, kind, phrase) + f" It spans columns {box[0]}-{box[2]} and rows {box[1]}-{box[3]}."
    )
    return [
        sample(
            ctx,
            "grounding_box",
            question("grounding_box", rng, a=phrase),
            box2d_gt(box, phrase),
            [v.rgb],
            answer_type="box2d",
            chain=chain,
            objects=[t],
            meta={"expression": kind, "views": views_meta(v)},
        )
    ]


@register_skill("grounding_choice", FAMILY, "choice")
def grounding_choice(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]:
    got = _target(ctx, rng)
    if got is None:
        return []
    v, t, kind, phrase = got
    marked = [t] + pick(rng, [i for i in v.visible if i != t], min(3, len(v.visible) - 1))
    order = [marked[int(j)] for j in rng.permutation(len(marked))]
    img = mark_points(v.rgb, [_nearest_mask_pixel(v, i) for i in order], list(LETTERS[: len(order)]))
    options = [f"marker {LETTERS[k]}" for k in range(len(order))]
    correct = order.index(t)
    chain = _chain(ctx, v, t, kind, phrase) + f" It carries marker {LETTERS[correct]}."
    return [
        sample(
            ctx,
            "grounding_choice",
            question("grounding_choice", rng, a=phrase, options=options),
            choice_gt(options, correct),
            [img],
            answer_type="choice",
            chain=chain,
            objects=order,
            meta={"expression": kind, "views": views_meta(v)},
        )
    ]
