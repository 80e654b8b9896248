"""Helpers shared by skill families: object picking, camera-frame geometry, scene graphs, sample assembly."""

from __future__ import annotations

from typing import Any

import numpy as np

from spatial_backbone.data.context import SceneContext, View
from spatial_backbone.data.formats import options_text
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.templates import QUESTIONS


def question(skill: str, rng: np.random.Generator, variant: int | None = None, **fields: Any) -> str:
    """A paraphrase of the skill's question (random unless `variant`), with fields filled."""
    qs = QUESTIONS[skill]
    q = qs[int(rng.integers(len(qs)))] if variant is None else qs[variant]
    if "options" in fields:
        fields["options"] = options_text(fields["options"])
    return q.format(**fields)


def pick(rng: np.random.Generator, items: list[int], k: int) -> list[int]:
    """k distinct random elements of `items` (shuffled)."""
    return [items[int(j)] for j in rng.choice(len(items), size=k, replace=False)]


def cam_xyz(ctx: SceneContext, view: View, i: int) -> np.ndarray:
    """Camera-frame centre (X right, Y down, Z forward) of object i."""
    return view.to_cam(ctx.objects[i].pos)[0]


def top_z(ctx: SceneContext, i: int) -> float:
    return float(ctx.objects[i].aabb[1, 2])


def volume(ctx: SceneContext, i: int) -> float:
    return float(np.prod(2 * ctx.objects[i].size))


def dominant_relation(d: np.ndarray) -> str:
    """Predicate for subject - object camera-frame offset d: left/right of (X) or in front of/behind (Z)."""
    if abs(d[0]) >= abs(d[2]):
        return "left of" if d[0] < 0 else "right of"
    return "in front of" if d[2] < 0 else "behind"


def graph(ctx: SceneContext, view: View, idxs: list[int], max_relations: int = 6) -> dict[str, Any]:
    """SpatialThinker scene graph of objects `idxs` in `view`: ids 'label.1', pixel boxes, relations."""
    ids = {i: f"{ctx.label(i)}.1" for i in idxs}
    objects = [{"id": ids[i], "bbox": view.box2d(i)} for i in idxs]
    relations = []
    for a_pos, a in enumerate(idxs):
        for b in idxs[a_pos + 1 :]:
            if len(relations) >= max_relations:
                break
            d = cam_xyz(ctx, view, a) - cam_xyz(ctx, view, b)
            relations.append({"subject": ids[a], "predicate": dominant_relation(d), "object": ids[b]})
    return {"objects": objects, "relations": relations}


def observe(ctx: SceneContext, view: View) -> str:
    names = [ctx.label(i) for i in view.visible]
    if not names:
        return "A table with no objects in view."
    art = [f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names]
    listed = ", ".join(art[:-1]) + (f" and {art[-1]}" if len(art) > 1 else art[0])
    return f"A table seen from above at an angle, with {listed}."


def sample(
    ctx: SceneContext, skill: str, q: str, answer: tuple[str, dict], images: list[np.ndarray], **extra: Any
) -> Sample:
    """Assemble a Sample: `answer` is (core, gt) from a formats.*_gt writer; `extra` holds answer_type, chain,
    graph, observe, formats, meta (the skill's own ground-truth details)."""
    core, gt = answer
    meta = {"objects": [ctx.label(i) for i in extra.pop("objects", [])]} | extra.pop("meta", {})
    return Sample(skill=skill, question=q, core=core, gt=gt, images=images, meta=meta, **extra)


def views_meta(*views: View) -> list[dict[str, Any]]:
    return [v.pose.as_dict() | {"camera": v.key} for v in views]
