"""Spatial-SSRL reward (self-supervised pretext tasks): overall = 0.9 accuracy + 0.1 format.

- format (0 or 1): exactly one `<think>...</think>` block at the start, then `\\boxed{...}` and nothing else
  (no other reasoning tags, one box).
- accuracy (0 or 1): exact match of the `\\boxed{}` content with the ground truth, read by the evaluation's
  parser of the item's answer type (so `\\boxed{3, 1, 4, 2}` and `\\boxed{3,1,4,2}` both match an ordering,
  `\\boxed{B}` a choice) and scored by its metric, which must be exactly 1. No `\\boxed{}`: accuracy 0 (the
  lenient evaluation parser would read a bare answer; the reward does not).
A correct boxed answer in the right format scores 1; garbage scores 0 and never raises.
"""

from __future__ import annotations

import re
from typing import Any

from spatial_backbone.evaluation.metrics import score as metric_score
from spatial_backbone.evaluation.parse import PARSERS, _boxed
from spatial_backbone.rewards.common import completion_text, ground_truth, safe_scores

NAME = "ssrl"
COMPONENTS = ("format", "accuracy")
W_ACCURACY, W_FORMAT = 0.9, 0.1
_FORMAT = re.compile(r"^\s*<think>(?:(?!</?think>).)*</think>\s*\\boxed\{.*\}\s*$", re.S)
_OTHER_TAGS = re.compile(r"</?(?:answer|observe|scene)>")


def format_ok(text: str) -> bool:
    return bool(_FORMAT.match(text)) and text.count("\\boxed{") == 1 and not _OTHER_TAGS.search(text)


def score_item(item: dict[str, Any]) -> dict[str, float]:
    text, gt, at = completion_text(item), ground_truth(item), item["answer_type"]
    boxed = _boxed(text)
    acc = 0.0
    if boxed is not None and boxed.strip():
        acc = float(metric_score(at, PARSERS[at](boxed.strip(), gt), gt) >= 1.0)
    fmt = float(format_ok(text))
    return {"format": fmt, "accuracy": acc, "overall": W_ACCURACY * acc + W_FORMAT * fmt}


def score(items: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Spatial-SSRL rewards of `items`: `overall`, `format`, `accuracy` (see the module docstring)."""
    return safe_scores(items, score_item, COMPONENTS)
