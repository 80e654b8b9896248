"""Word-region alignment for SFT: an auxiliary loss that binds an object's name to its image tokens.

Why: text-answer SFT of the tiny from-scratch backbone learns answer formats and scales but not *which
object is where* (docs/sft.md: every lever lands at +9 to +10 points); the DESIGN.md section 6 probe found
that binding words to visual tokens is what a from-scratch ViT + causal LM does not find by itself. GLIP
(Li et al., arXiv 2112.03857) trains this binding with a word-region alignment loss; here the regions are
the language model's image tokens and the ground truth comes from the simulator: every item's `meta` holds its
scene's objects (3D box) and the camera of each image, so the image tokens an object covers are known exactly.

Design:
- `item_mentions` (at encoding time): each object label that occurs in the question (whole words, unique in
  the scene) is a *mention*; its query token is the label's last token. Its positives are the image tokens
  (merged 2x2 patch cells, row-major per image, as Qwen2.5-VL lays them out) that the object's projected 3D
  box covers, in every image of the item. Objects behind a camera or outside an image add none there.
- `GroundingHead`: two linear maps (query from the mention token's hidden state, key from each image token's),
  at one language-model layer; the loss of a mention is -log of the softmax mass on its positives over all
  the item's image tokens (multi-positive InfoNCE), averaged over mentions. Supervising a middle layer leaves
  the layers above it to use the binding for the answer. The head is a training aid: it is saved in the
  checkpoint's training state (exact resume) but not in the tuned backbone.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from envs.scene import box_corners, look_at_axes


@dataclass
class Mention:
    """An object named in an item's prompt: the query token and the item's image-token indices it covers."""

    query: int  # token index in the item
    positives: list[int]  # indices into the item's image tokens (all images, prompt order)
    obj: int = -1  # the object's index in the item's scene (mentions of one object share it)


def camera_extrinsic(eye, target) -> np.ndarray:
    """World -> camera (OpenCV axes: x right, y down, z forward) [4, 4] of a camera at `eye` looking at
    `target` with world z up (`envs.scene.look_at_axes`, the frame MuJoCo's posed cameras get)."""
    x, up, f = look_at_axes(eye, target)
    ext = np.eye(4)
    ext[:3, :3] = np.stack([x, -up, f])  # rows: camera axes in world coordinates
    ext[:3, 3] = -ext[:3, :3] @ np.asarray(eye, float)
    return ext


def project(
    points: np.ndarray, view: dict[str, Any], width: int, height: int, default_fovy: float
) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> pixels (u, v) [N, 2] and camera depth [N] in an image of `width` x `height`
    rendered from `view` (`eye`, `target`, `fovy` as stored in an item's meta; a `fovy` of None means the
    dataset's camera field of view, `default_fovy`)."""
    ext = camera_extrinsic(view["eye"], view["target"])
    f = 0.5 * height / math.tan(math.radians(view.get("fovy") or default_fovy) / 2)
    pc = np.atleast_2d(points) @ ext[:3, :3].T + ext[:3, 3]  # [N, 3]
    z = pc[:, 2]
    uv = np.stack([f * pc[:, 0], f * pc[:, 1]], -1) / np.where(np.abs(z) < 1e-9, 1e-9, z)[:, None]
    return uv + np.array([width / 2, height / 2]), z


def object_corners(obj: dict[str, Any]) -> np.ndarray:
    """The 8 corners [8, 3] of an object's box (meta `pos` centre, `size` full extents, `yaw` radians)."""
    c, s = math.cos(obj.get("yaw", 0.0)), math.sin(obj.get("yaw", 0.0))
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return box_corners(np.asarray(obj["pos"], float), rot, np.asarray(obj["size"], float) / 2)


def covered_cells(
    obj: dict[str, Any], view: dict[str, Any], cells: tuple[int, int], cell_px: int, default_fovy: float
) -> list[int]:
    """Row-major indices of an image's merged token cells (`cells` = (rows, cols), `cell_px` pixels each)
    that the object's projected box overlaps; [] when a corner is behind the camera or the box misses."""
    h_cells, w_cells = cells
    uv, z = project(object_corners(obj), view, w_cells * cell_px, h_cells * cell_px, default_fovy)
    if (z <= 1e-3).any():
        return []
    u0, v0 = np.floor(uv.min(0) / cell_px).astype(int)
    u1, v1 = np.floor((uv.max(0) - 1e-6) / cell_px).astype(int)
    u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, w_cells - 1), min(v1, h_cells - 1)
    return [r * w_cells + c for r in range(v0, v1 + 1) for c in range(u0, u1 + 1)]


def _label_spans(question: str, label: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(rf"\b{re.escape(label)}\b", question, flags=re.IGNORECASE)]


def item_mentions(
    item: dict[str, Any],
    question_start: int,
    offsets: list[tuple[int, int]],
    grids: list[tuple[int, int, int]],
    merge: int,
    patch: int,
    default_fovy: float,
) -> list[Mention]:
    """The mentions of one dataset item (see the module docstring). `question_start` is the character offset
    of the question in the prompt text whose token `offsets` (start, end) are given; `grids` the (t, h, w)
    patch grid of each image; `default_fovy` the dataset's camera field of view. Items without scene
    objects, or whose images are not all camera views, have none."""
    meta = item.get("meta") or {}
    meta = json.loads(meta) if isinstance(meta, str) else meta
    objects, views = meta.get("scene_objects") or [], meta.get("views") or []
    if not objects or len(views) != len(grids):
        return []
    labels = [o["label"] for o in objects]
    ends = np.asarray([e for _, e in offsets])  # token end offsets, non-decreasing
    cells = [(g[1] // merge, g[2] // merge) for g in grids]
    firsts = np.cumsum([0] + [r * c for r, c in cells])  # first image-token index of each image
    out = []
    for index, obj in enumerate(objects):
        if labels.count(obj["label"]) != 1:  # ambiguous name: no single referent
            continue
        positives = [
            int(firsts[k]) + i
            for k, (view, cell) in enumerate(zip(views, cells, strict=True))
            for i in covered_cells(obj, view, cell, patch * merge, default_fovy)
        ]
        if not positives:
            continue
        for _, end in _label_spans(item["question"], obj["label"]):
            tok = int(np.searchsorted(ends, question_start + end))  # the token holding the label's last char
            if tok < len(offsets):
                out.append(Mention(tok, positives, index))
    return out


class GroundingHead(torch.nn.Module):
    """Query/key maps of the word-region alignment loss (module docstring)."""

    def __init__(self, hidden: int, dim: int):
        super().__init__()
        self.query = torch.nn.Linear(hidden, dim)
        self.key = torch.nn.Linear(hidden, dim)
        self.scale = dim**-0.5

    def forward(self, hidden: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """hidden [B, S, D] at the supervised layer; `targets` from `PackedCollator` (one per mention: `row`,
        `query` column, `keys` columns of the item's image tokens, `positive` mask over them). Returns the
        mean multi-positive InfoNCE loss over mentions."""
        losses = [
            self.mention_loss(hidden[t["row"], t["query"]], hidden[t["row"], t["keys"]], t["positive"])
            for t in targets
        ]
        return torch.stack(losses).mean()

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """A mention's state [D] against its item's image-token states [K, D] -> logits [K]."""
        return (self.key(keys) @ self.query(query)).float() * self.scale

    def mention_loss(self, query: torch.Tensor, keys: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """-log of the softmax mass on the `positive` tokens [K] (multi-positive InfoNCE)."""
        logits = self.scores(query, keys)  # [K]
        return torch.logsumexp(logits, 0) - torch.logsumexp(logits.masked_fill(~positive, float("-inf")), 0)
