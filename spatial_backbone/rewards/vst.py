"""VST reward (Visual Spatial Tuning, arXiv 2511.05491): overall = 0.5 accuracy + 0.5 format.

- format (0 or 1): the completion has the shape the item's format asks for. `think` items (VST-R, thinking
  system prompt): exactly one `<think>...</think>` block at the start, then a well-formed final answer.
  `plain` items: no reasoning tags, and the whole completion is a well-formed answer of the item's answer type
  (`common.answer_well_formed`: a lone letter / option, a vocabulary word, a number with unit, a full
  ordering, JSON of the right structure).
- accuracy: the evaluation's score of the parsed final answer (`evaluation.parse` + `evaluation.metrics`):
  exact letter / word / ordering, VSI-Bench mean relative accuracy for numbers, IoU for 2D boxes,
  point-in-box for points. For 3D boxes, VST's box accuracy: 0.5 x (sum of Hungarian-matched 3D IoUs / N_gt)
  + 0.5 x F1 at IoU >= 0.25, whose two terms are also returned as `box_iou` and `box_f1`.
A correct answer in the item's format scores 1; anything unparseable scores 0 and never raises.
"""

from __future__ import annotations

import re
from typing import Any

from spatial_backbone.evaluation.metrics import score as metric_score
from spatial_backbone.evaluation.parse import final_answer, parse, parse_boxes3d
from spatial_backbone.rewards.common import (
    answer_well_formed,
    box3d_match,
    completion_text,
    ground_truth,
    safe_scores,
)

NAME = "vst"
COMPONENTS = ("format", "accuracy")  # + box_iou, box_f1 for 3D-box items
W_ACCURACY, W_FORMAT = 0.5, 0.5
_THINK_THEN_ANSWER = re.compile(r"^\s*<think>(?:(?!</?think>).)*</think>(.*)$", re.S)
_ANY_TAG = re.compile(r"</?(?:think|answer|observe|scene)>")


def format_ok(text: str, fmt: str, answer_type: str, gt: dict[str, Any]) -> bool:
    if fmt == "think":
        m = _THINK_THEN_ANSWER.match(text)
        return bool(m) and not _ANY_TAG.search(m.group(1)) and answer_well_formed(m.group(1), answer_type, gt)
    return not _ANY_TAG.search(text) and answer_well_formed(text, answer_type, gt)


def score_item(item: dict[str, Any]) -> dict[str, float]:
    text, gt, at = completion_text(item), ground_truth(item), item["answer_type"]
    fmt = float(format_ok(text, item.get("format", "plain"), at, gt))
    out = {"format": fmt}
    if at == "boxes3d":
        pred = parse_boxes3d(final_answer(text), gt) or []
        iou, f1 = box3d_match([b["bbox_3d"] for b in pred], [b["bbox_3d"] for b in gt["boxes"]])
        out |= {"box_iou": iou, "box_f1": f1}
        acc = 0.5 * iou + 0.5 * f1
    else:
        acc = metric_score(at, parse(text, at, gt), gt)
    return out | {"accuracy": acc, "overall": W_ACCURACY * acc + W_FORMAT * fmt}


def score(items: list[dict[str, Any]]) -> list[dict[str, float]]:
    """VST rewards of `items` (see the module docstring): `overall`, `format`, `accuracy`, and `box_iou`,
    `box_f1` for 3D-box items."""
    return safe_scores(items, score_item, COMPONENTS)
