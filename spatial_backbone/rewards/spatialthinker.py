"""SpatialThinker's gated dense reward (arXiv 2511.07403):

    R = 1[format] x (0.1 F + 0.2 C + 0.5 A + 1[A = 1] x 0.2 S)

- gate 1[format]: `spatialthinker` items need `<observe>`, `<scene>`, `<think>`, `<answer>` blocks, each
  exactly once and in this order (nothing after `</answer>`); scene-graph items written `plain` need the
  completion to be the graph JSON itself. A closed gate scores 0, whatever the rest.
- F (format quality): the mean of the sub-checks behind the gate plus the content checks: the `<scene>` block
  (or the plain completion) decodes to a graph `{"objects": [{"id", "bbox"}], "relations": [...]}`, and the
  final answer is well formed for the answer type (`common.answer_well_formed`).
- C (count): 0.7 x max(0, 1 - |N_obj - N_obj_gt| / N_obj_gt) + 0.3 x the same for relations, against the
  reference scene graph (the `<scene>` block of the item's reference `answer`; the `gt` of a scene-graph
  item).
- A (accuracy): exact match of the choice / word (the evaluation's parser and scorer). For scene-graph items
  the graph is the answer, so A is the evaluation's graph score (matched box IoU + relation F1).
- S (spatial, only when A = 1: without the gate the model games the box term): Hungarian matching of predicted
  to reference objects with cost (1 - label similarity) + (1 - CIoU); S = sum over matched pairs of
  label similarity x max(0, CIoU) / N_obj_gt. Label similarity replaces spaCy word vectors with token-set
  Jaccard of the labels, shape synonyms merged (`common.label_similarity`): 1 for the same label, 1/3 for the
  right shape in the wrong color, 0 for unrelated labels.
Items without a reference graph (none in our data) drop C and S and renormalise the remaining weights, so a
correct answer still scores 1. Garbage scores 0 and never raises.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from spatial_backbone.evaluation.metrics import score as metric_score
from spatial_backbone.evaluation.parse import first_json, parse, parse_scene_graph
from spatial_backbone.rewards.common import (
    answer_well_formed,
    ciou,
    completion_text,
    ground_truth,
    hungarian,
    label_similarity,
    safe_scores,
    tag_content,
)

NAME = "spatialthinker"
COMPONENTS = ("format_gate", "format", "count", "accuracy", "spatial")
WEIGHTS = {"format": 0.1, "count": 0.2, "accuracy": 0.5, "spatial": 0.2}
COUNT_OBJECTS, COUNT_RELATIONS = 0.7, 0.3
_TAGS = ("observe", "scene", "think", "answer")
_ORDERED = re.compile(
    r"^\s*" + r"\s*".join(rf"<{t}>(?:(?!</?{t}>).)*</{t}>" for t in _TAGS) + r"\s*$",
    re.S,
)


def reference_graph(item: dict[str, Any], gt: dict[str, Any]) -> dict[str, Any] | None:
    """The reference scene graph: `gt` of a scene-graph item, else the `<scene>` block of the item's
    answer."""
    if item["answer_type"] == "scene_graph":
        return gt
    scene = tag_content(str(item.get("answer") or ""), "scene")
    return parse_scene_graph(scene, gt) if scene is not None else None


def count_score(pred: dict[str, Any] | None, ref: dict[str, Any]) -> float:
    def term(n: int, n_gt: int) -> float:
        return max(0.0, 1 - abs(n - n_gt) / n_gt) if n_gt else float(n == 0)

    if pred is None:
        return 0.0
    objects = term(len(pred["objects"]), len(ref["objects"]))
    return COUNT_OBJECTS * objects + COUNT_RELATIONS * term(len(pred["relations"]), len(ref["relations"]))


def _ciou_or_worst(a: Any, b: Any) -> float:
    try:
        return ciou(a, b)
    except (TypeError, ValueError, OverflowError):  # a box of non-numbers: the worst CIoU, not a crash
        return -1.0


def spatial_score(pred: dict[str, Any] | None, ref: dict[str, Any]) -> float:
    """Hungarian-matched, label-weighted CIoU of the predicted objects, summed / N_gt (see the docstring)."""
    go = ref["objects"]
    if not pred or not pred["objects"] or not go:
        return 0.0
    po = pred["objects"]
    sim = np.array([[label_similarity(p["id"], g["id"]) for g in go] for p in po])  # [P, G]
    box = np.array([[_ciou_or_worst(p["bbox"], g["bbox"]) for g in go] for p in po])  # [P, G]
    pairs = hungarian((1 - sim) + (1 - box))
    return sum(sim[r, c] * max(0.0, box[r, c]) for r, c in pairs) / len(go)


def score_item(item: dict[str, Any]) -> dict[str, float]:
    text, gt, at = completion_text(item), ground_truth(item), item["answer_type"]
    if item.get("format") == "spatialthinker":
        gate = bool(_ORDERED.match(text))
        scene, final = tag_content(text, "scene"), tag_content(text, "answer")
    else:  # a scene graph written plain: the completion is the graph
        gate = isinstance(first_json(text), dict) and text.strip().startswith("{")
        scene, final = text, text
    if not gate:
        return {}
    pred = parse_scene_graph(scene or "", gt)
    checks = [pred is not None, final is not None and answer_well_formed(final, at, gt)]
    parts = {
        "format": (1 + sum(checks)) / (1 + len(checks)),
        "accuracy": metric_score(at, parse(text, at, gt), gt),
    }
    ref = reference_graph(item, gt)
    if ref is not None:
        parts["count"] = count_score(pred, ref)
        parts["spatial"] = spatial_score(pred, ref) if parts["accuracy"] >= 1.0 else 0.0
    total = sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS[k] for k in parts)
    return parts | {"format_gate": 1.0, "overall": total}


def score(items: list[dict[str, Any]]) -> list[dict[str, float]]:
    """SpatialThinker rewards of `items` (see the module docstring): `overall`, `format_gate`, `format`,
    `count`, `accuracy`, `spatial`."""
    return safe_scores(items, score_item, COMPONENTS)
