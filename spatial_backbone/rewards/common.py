"""Shared pieces of the verifiable spatial rewards: item access, the never-raise wrapper, strict answer-format
checks, Hungarian matching, 2D CIoU, 3D-box matching and label similarity.

Design (DESIGN.md sections 2-3; EasyR1-style `score(items) -> list[dict]`):
- An item is a dict holding the model's `completion` (str) and the dataset item's `answer_type`, `gt` (a
  dict or the JSON string stored on disk), `format` and, when available, the reference `answer`
  (SpatialThinker reads the reference scene graph from it). Nothing else is required.
- `safe_scores` runs a family's per-item function and turns *any* failure (garbage text, a malformed ground
  truth, non-finite numbers) into all-zero components: a reward function never raises and always returns
  values in [0, 1]. Non-finite or out-of-range values are clamped (NaN -> 0).
- Parsing and scoring are not written twice: answers are read by `spatial_backbone.evaluation.parse` and
  scored by `spatial_backbone.evaluation.metrics` (the same code `svla-spatial-eval` uses), so the RL
  objective and the evaluation metric agree. This module adds what the rewards need on top: a *strict*
  format check of a final answer (the parsers are deliberately lenient), 2D CIoU (SpatialThinker's box
  term), and the VST 3D-box matching split into its two components (mean matched IoU, F1 at IoU >= 0.25).
- Label similarity (SpatialThinker uses spaCy word vectors, which need a model download): token-set Jaccard
  similarity of the labels after lower-casing, dropping instance suffixes (`red cube.1` -> `red cube`) and
  mapping shape synonyms to one word (ball = sphere, block = cube, ...). Our labels are a closed `color shape`
  vocabulary, so this is 1 for identical labels, 1/3 for a right shape with the wrong color (or the
  reverse), and 0 for unrelated labels; it is deterministic and needs no download.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from spatial_backbone.evaluation.metrics import IOU_F1_THRESHOLD, box3d_iou
from spatial_backbone.evaluation.parse import _NUMBER, _UNITS_TO_M, _norm, first_json, parse_ordering

log = logging.getLogger(__name__)

ItemScorer = Callable[[dict[str, Any]], dict[str, float]]


# -- item access and the never-raise wrapper
# ------------------------------------------------------------------------
def ground_truth(item: dict[str, Any]) -> dict[str, Any]:
    """The item's `gt` as a dict (decoding the on-disk JSON string if needed)."""
    gt = item["gt"]
    gt = json.loads(gt) if isinstance(gt, str) else gt
    if not isinstance(gt, dict):
        raise TypeError(f"gt must be a dict or a JSON object string, got {type(gt).__name__}")
    return gt


def completion_text(item: dict[str, Any]) -> str:
    """The completion as text (TRL passes conversational completions as a list of messages)."""
    c = item.get("completion", "")
    if isinstance(c, list):  # [{"role": "assistant", "content": "..."}]
        c = "".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in c)
    return c if isinstance(c, str) else str(c)


def clamp01(x: Any) -> float:
    """x as a float in [0, 1]; NaN, None and garbage become 0."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if not math.isfinite(v) else min(1.0, max(0.0, v))


def safe_scores(items: list[dict[str, Any]], fn: ItemScorer, components: tuple[str, ...]) -> list[dict]:
    """Score every item with `fn`; any exception gives all-zero components (never raises). Every value is
    clamped to [0, 1]; the result always has `overall` and every name in `components`."""
    out = []
    for item in items:
        zero = dict.fromkeys(("overall", *components), 0.0)
        try:
            res = fn(item)
        except Exception as err:  # noqa: BLE001 - garbage in must give 0, never an exception
            log.debug("reward: item scored 0 (%s: %s)", type(err).__name__, err)
            res = {}
        out.append(zero | {k: clamp01(v) for k, v in res.items()})
    return out


# -- strict format of a final answer (the parsers are lenient on purpose; a format reward must not be)
# -------
_UNIT_WORDS = "|".join(sorted(_UNITS_TO_M, key=len, reverse=True))
_NUMBER_ANSWER = re.compile(rf"^\s*{_NUMBER}\s*(?:{_UNIT_WORDS})?\s*\.?\s*$", re.I)
_LETTER_ANSWER = re.compile(r"^\s*\(?([A-H])\)?\.?\s*$")


def _is_num_list(v: Any, n: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) == n
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    )


def _json_list_of(final: str, key: str, n: int) -> bool:
    v = first_json(final)
    v = [v] if isinstance(v, dict) else v
    return (
        isinstance(v, list)
        and bool(v)
        and all(isinstance(b, dict) and _is_num_list(b.get(key), n) for b in v)
    )


def _graph_ok(final: str) -> bool:
    v = first_json(final)
    return (
        isinstance(v, dict)
        and isinstance(v.get("objects"), list)
        and all(isinstance(o, dict) and "id" in o and _is_num_list(o.get("bbox"), 4) for o in v["objects"])
        and all(
            isinstance(r, dict) and {"subject", "predicate", "object"} <= set(r)
            for r in v.get("relations") or []
        )
    )


def _choice_ok(final: str, gt: dict[str, Any]) -> bool:
    m = _LETTER_ANSWER.match(final)
    if m:
        return "ABCDEFGH".index(m.group(1)) < len(gt["options"])
    return _norm(final) in {_norm(o) for o in gt["options"]}


def _ordering_ok(final: str, gt: dict[str, Any]) -> bool:
    order = parse_ordering(final, gt)
    return order is not None and len(order) == len(gt.get("tokens", gt["order"]))


STRICT_FORMATS: dict[str, Callable[[str, dict[str, Any]], bool]] = {
    "choice": _choice_ok,
    "word": lambda f, g: _norm(f).rstrip(".") in {_norm(w) for w in g["vocab"]},
    "number": lambda f, g: bool(_NUMBER_ANSWER.match(f)),
    "ordering": _ordering_ok,
    "box2d": lambda f, g: _json_list_of(f, "bbox_2d", 4),
    "point": lambda f, g: _json_list_of(f, "point_2d", 2),
    "boxes3d": lambda f, g: _json_list_of(f, "bbox_3d", 9),
    "scene_graph": lambda f, g: _graph_ok(f),
}


def answer_well_formed(final: str, answer_type: str, gt: dict[str, Any]) -> bool:
    """Whether a final answer (wrappers already stripped) is exactly an answer of `answer_type`: a lone choice
    letter or option text, a vocabulary word, a number with an optional unit, every token of an ordering, or
    JSON of the right structure (no fallback to loose numbers)."""
    if answer_type not in STRICT_FORMATS:
        raise KeyError(f"no format check for answer type {answer_type!r}; valid: {sorted(STRICT_FORMATS)}")
    return bool(final.strip()) and STRICT_FORMATS[answer_type](final.strip(), gt)


def tag_content(text: str, tag: str) -> str | None:
    """Content of the single `<tag>...</tag>` block, or None if absent or repeated."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)
    return blocks[0] if len(blocks) == 1 else None


# -- matching and box overlap
# ---------------------------------------------------------------------------------------
def hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one matching of rows to columns (scipy's linear_sum_assignment); [] if empty."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e6, posinf=1e6, neginf=-1e6))
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def ciou(a: list[float], b: list[float]) -> float:
    """Complete IoU of two [x1, y1, x2, y2] boxes (Zheng et al. 2020): IoU - rho^2 / c^2 - alpha v, where
    rho is the centre distance, c the diagonal of the smallest enclosing box and v the aspect-ratio term. In
    [-1, 1]; 1 only for identical boxes, and it keeps falling as boxes move apart after they stop
    overlapping."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    aw, ah, bw, bh = max(ax2 - ax1, 0.0), max(ay2 - ay1, 0.0), max(bx2 - bx1, 0.0), max(by2 - by1, 0.0)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = aw * ah + bw * bh - inter
    iou = inter / union if union > 0 else 0.0
    rho2 = ((ax1 + ax2 - bx1 - bx2) ** 2 + (ay1 + ay2 - by1 - by2) ** 2) / 4
    c2 = (max(ax2, bx2) - min(ax1, bx1)) ** 2 + (max(ay2, by2) - min(ay1, by1)) ** 2
    v = 0.0
    if ah > 0 and bh > 0:
        v = 4 / math.pi**2 * (math.atan(bw / bh) - math.atan(aw / ah)) ** 2
    alpha = v / (1 - iou + v) if v > 0 else 0.0
    value = iou - (rho2 / c2 if c2 > 0 else 0.0) - alpha * v
    return value if math.isfinite(value) else -1.0


def box3d_match(pred: list[list[float]], gt: list[list[float]]) -> tuple[float, float]:
    """VST's two 3D-box terms: (sum of Hungarian-matched 3D IoUs / N_gt, F1 at IoU >= 0.25). The IoU is the
    evaluation's oriented-box IoU (`metrics.box3d_iou`)."""
    if not pred or not gt:
        return 0.0, 0.0
    iou = np.array([[box3d_iou(p, g) for g in gt] for p in pred])  # [P, G]
    matched = [float(iou[r, c]) for r, c in hungarian(-iou)]
    tp = sum(v >= IOU_F1_THRESHOLD for v in matched)
    f1 = 2 * tp / (len(pred) + len(gt))  # = 2PR / (P + R)
    return sum(matched) / len(gt), f1


_SYNONYMS = {"sphere": "ball", "block": "cube", "box": "cube", "cylinder": "cylinder", "dish": "plate"}


def _label_words(label: Any) -> frozenset[str]:
    text = re.sub(r"\.\d+$", "", str(label).strip().lower())
    return frozenset(_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text) if w not in ("the", "a", "an"))


def label_similarity(a: Any, b: Any) -> float:
    """Token-set Jaccard similarity of two object labels (see the module docstring), in [0, 1]."""
    wa, wb = _label_words(a), _label_words(b)
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0
