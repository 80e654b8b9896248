"""Per-item scores, chance levels and per-skill aggregation for spatial evaluation.

Scores (all in [0, 1], registry `SCORERS` keyed by answer type):
- choice / word: accuracy (exact letter / vocabulary entry).
- number: mean relative accuracy as VSI-Bench defines it: MRA = mean over theta in {0.50, 0.55, ..., 0.95} of
  1[|pred - gt| / |gt| < 1 - theta].
- ordering: exact match of the sequence.
- box2d: IoU of pixel boxes. point: 1 if the point falls in the object's box.
- boxes3d: VST's 3D-box accuracy (DESIGN.md section 3): 0.5 x (sum of Hungarian-matched 3D IoUs / number of
  ground-truth boxes) + 0.5 x F1 at IoU >= 0.25. Oriented-box IoU: exact volumes, intersection from a 20^3
  grid filling each box (deterministic; error ~1-3% for our box shapes).
- scene_graph: 0.5 x (Hungarian-matched box IoU with matching labels, summed / number of ground-truth objects)
  + 0.5 x relation-triple F1 (ids mapped through the matching).
Chance levels (`chance`): 1 / number of options for choice and word items, 1 / n! for orderings, and for the
open answer types the mean score of answering another item's ground truth of the same skill ("shuffled ground
truth"), which is what a model that knows the answer distribution but not the image would get.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

MRA_THRESHOLDS = np.arange(0.50, 0.951, 0.05)
IOU_F1_THRESHOLD = 0.25


def mean_relative_accuracy(pred: float | None, gt: float) -> float:
    if pred is None or not math.isfinite(pred):
        return 0.0
    rel = abs(pred - gt) / max(abs(gt), 1e-9)
    return float(np.mean(rel < 1 - MRA_THRESHOLDS))


def box_iou(a: list[float] | None, b: list[float]) -> float:
    if a is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box3d_corners(params: list[float]) -> np.ndarray:
    """[8, 3] corners of a VST box [x, y, z, x_size, y_size, z_size, pitch, yaw, roll] (camera frame;
    rotation R = Rx(pitch) @ Ry(yaw) @ Rz(roll), intrinsic, as written by the boxes_3d skill)."""
    c, size, ang = np.asarray(params[:3], float), np.abs(np.asarray(params[3:6], float)), params[6:9]
    rot = Rotation.from_euler("XYZ", ang).as_matrix()
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    return c + (signs * size / 2) @ rot.T


def _inside(points: np.ndarray, params: list[float]) -> np.ndarray:
    c, half = np.asarray(params[:3], float), np.abs(np.asarray(params[3:6], float)) / 2
    rot = Rotation.from_euler("XYZ", params[6:9]).as_matrix()
    local = (points - c) @ rot  # [N, 3] in the box frame
    return (np.abs(local) <= half + 1e-12).all(-1)


def _grid_in_box(params: list[float], n: int) -> np.ndarray:
    """[n^3, 3] cell centres of an n x n x n grid filling the oriented box (camera frame)."""
    c, size = np.asarray(params[:3], float), np.abs(np.asarray(params[3:6], float))
    t = (np.arange(n) + 0.5) / n - 0.5
    local = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3) * size  # [n^3, 3]
    return c + local @ Rotation.from_euler("XYZ", params[6:9]).as_matrix().T


def box3d_iou(a: list[float], b: list[float], n: int = 20) -> float:
    """IoU of two oriented 3D boxes. The intersection volume is estimated by filling each box with an n^3 grid
    and counting the cells inside the other box (the two estimates are averaged); volumes are exact."""
    va, vb = float(np.prod(np.abs(a[3:6]))), float(np.prod(np.abs(b[3:6])))
    if va <= 0 or vb <= 0:
        return 0.0
    inter = 0.5 * (va * _inside(_grid_in_box(a, n), b).mean() + vb * _inside(_grid_in_box(b, n), a).mean())
    return float(min(1.0, inter / (va + vb - inter))) if inter > 0 else 0.0


def _match(cost: np.ndarray) -> list[tuple[int, int]]:
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def boxes3d_score(pred: list[dict] | None, gt: dict[str, Any]) -> float:
    """VST: 0.5 x (sum of Hungarian-matched IoUs / N_gt) + 0.5 x F1 at IoU >= 0.25."""
    boxes = gt["boxes"]
    if not pred or not boxes:
        return 0.0
    iou = np.array([[box3d_iou(p["bbox_3d"], g["bbox_3d"]) for g in boxes] for p in pred])  # [P, G]
    pairs = _match(-iou)
    matched = [iou[r, c] for r, c in pairs]
    tp = sum(v >= IOU_F1_THRESHOLD for v in matched)
    prec, rec = tp / len(pred), tp / len(boxes)
    f1 = 2 * prec * rec / (prec + rec) if tp else 0.0
    return 0.5 * sum(matched) / len(boxes) + 0.5 * f1


def _label(obj_id: str) -> str:
    return str(obj_id).rsplit(".", 1)[0].strip().lower()


def scene_graph_score(pred: dict | None, gt: dict[str, Any]) -> float:
    """0.5 x matched object box IoU (label must match) / N_gt + 0.5 x relation-triple F1."""
    if not pred or not gt["objects"]:
        return 0.0
    po, go = pred["objects"], gt["objects"]
    iou = (
        np.array(
            [
                [
                    box_iou([float(x) for x in p["bbox"]], g["bbox"]) * (_label(p["id"]) == _label(g["id"]))
                    for g in go
                ]
                for p in po
            ]
        )
        if po
        else np.zeros((0, len(go)))
    )
    pairs = _match(1.0 - iou)
    obj = sum(iou[r, c] for r, c in pairs) / len(go)
    id_map = {po[r]["id"]: go[c]["id"] for r, c in pairs if iou[r, c] > 0}
    pt = {
        (id_map.get(r["subject"]), str(r["predicate"]).lower(), id_map.get(r["object"]))
        for r in pred["relations"]
    }
    gt_t = {(r["subject"], r["predicate"], r["object"]) for r in gt["relations"]}
    tp = len(pt & gt_t)
    f1 = 2 * tp / (len(pt) + len(gt_t)) if tp else 0.0
    return 0.5 * obj + 0.5 * f1


def _point_in_box(pred: list[float] | None, gt: dict[str, Any]) -> float:
    if pred is None:
        return 0.0
    b = gt["bbox"]
    return float(b[0] <= pred[0] <= b[2] and b[1] <= pred[1] <= b[3])


SCORERS: dict[str, Callable[[Any, dict[str, Any]], float]] = {
    "choice": lambda p, g: float(p == g["letter"]),
    "word": lambda p, g: float(p == g["word"]),
    "number": lambda p, g: mean_relative_accuracy(p, g["value"]),
    "ordering": lambda p, g: float(p == g["order"]),
    "box2d": lambda p, g: box_iou(p, g["bbox"]),
    "point": _point_in_box,
    "boxes3d": boxes3d_score,
    "scene_graph": scene_graph_score,
}

# A ground truth written as a prediction: used for the shuffled-ground-truth chance level.
AS_PREDICTION: dict[str, Callable[[dict[str, Any]], Any]] = {
    "number": lambda g: g["value"],
    "box2d": lambda g: g["bbox"],
    "point": lambda g: [(g["bbox"][0] + g["bbox"][2]) / 2, (g["bbox"][1] + g["bbox"][3]) / 2],
    "boxes3d": lambda g: g["boxes"],
    "scene_graph": lambda g: {"objects": g["objects"], "relations": g["relations"]},
}


def score(answer_type: str, pred: Any, gt: dict[str, Any]) -> float:
    if answer_type not in SCORERS:
        raise KeyError(f"no scorer for answer type {answer_type!r}; valid: {sorted(SCORERS)}")
    return float(SCORERS[answer_type](pred, gt))


def chance(answer_type: str, gts: list[dict[str, Any]], max_pairs: int = 2000, seed: int = 0) -> float:
    """Chance level of a skill from its items' ground truths (see the module docstring)."""
    if not gts:
        return float("nan")
    if answer_type == "choice":
        return float(np.mean([1 / len(g["options"]) for g in gts]))
    if answer_type == "word":
        return float(np.mean([1 / len(g["vocab"]) for g in gts]))
    if answer_type == "ordering":
        return float(np.mean([1 / math.factorial(len(g["order"])) for g in gts]))
    if len(gts) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    n = min(max_pairs, len(gts) * (len(gts) - 1))
    i = rng.integers(len(gts), size=n)
    j = (i + rng.integers(1, len(gts), size=n)) % len(gts)  # j != i
    return float(
        np.mean(
            [
                score(answer_type, AS_PREDICTION[answer_type](gts[b]), gts[a])
                for a, b in zip(i, j, strict=True)
            ]
        )
    )


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-skill summary of scored rows (skill, answer_type, gt, score, strict, parsed)."""
    out: dict[str, dict[str, Any]] = {}
    for skill in sorted({r["skill"] for r in rows}):
        rs = [r for r in rows if r["skill"] == skill]
        at = rs[0]["answer_type"]
        out[skill] = {
            "answer_type": at,
            "metric": METRIC_NAMES[at],
            "n": len(rs),
            "score": float(np.mean([r["score"] for r in rs])),
            "strict": float(np.mean([r["strict"] for r in rs])),
            "parsed": float(np.mean([r["parsed"] for r in rs])),
            "chance": chance(at, [r["gt"] for r in rs]),
        }
    return out


METRIC_NAMES = {
    "choice": "accuracy",
    "word": "accuracy",
    "number": "MRA",
    "ordering": "exact",
    "box2d": "IoU",
    "point": "point-in-box",
    "boxes3d": "VST 3D box",
    "scene_graph": "graph IoU+F1",
}
