"""What the backbone hands to an action head, and which hidden layers a head reads.

Heads read several layers, not only the last: VLA-Adapter's ablation (DESIGN.md section 4) found
last-layer-only heads lose ~10 points on LIBERO-Long and collapse with a frozen backbone, while all-layer
conditioning holds up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class BackboneFeatures:
    """hidden_states: per selected layer, [B, S, D]. attention_mask: [B, S] (1 = real token, left padding).
    query_start: index where the head's suffix tokens begin (they run to the end of the sequence)."""

    hidden_states: list[torch.Tensor]
    attention_mask: torch.Tensor
    query_start: int
    token_coords: torch.Tensor | None = (
        None  # [B, S, 2 + C]: image tokens' (x, y) in [-1, 1] + camera one-hot
    )
    image_mask: torch.Tensor | None = None  # [B, S] True at image tokens
    instruction: torch.Tensor | None = None  # [B, L, D] input embeddings of the instruction's words alone
    instruction_mask: torch.Tensor | None = None  # [B, L] 1 = word, 0 = padding

    @property
    def queries(self) -> list[torch.Tensor]:  # per layer [B, Q, D]
        return [h[:, self.query_start :] for h in self.hidden_states]


def _centres(n: int) -> torch.Tensor:
    """Centres of n equal cells spanning [-1, 1]."""
    return (torch.arange(n) + 0.5) / n * 2 - 1


@functools.lru_cache(maxsize=32)
def _grid_coords(grids: tuple[tuple[int, int, int], ...], merge: int) -> torch.Tensor:
    """(x, y) + camera one-hot of every merged image token of one row: [N_img, 2 + C]. (x, y) is the token's
    centre in image coordinates scaled to [-1, 1] over the image (-1 = left/top edge), the frame in which the
    privileged image coordinates of targets are given."""
    n_cams = len(grids)
    per_cam = []
    for cam, (_, gh, gw) in enumerate(grids):
        h, w = gh // merge, gw // merge
        ys, xs = torch.meshgrid(_centres(h), _centres(w), indexing="ij")
        onehot = torch.zeros(h * w, n_cams)
        onehot[:, cam] = 1
        per_cam.append(torch.cat([xs.reshape(-1, 1), ys.reshape(-1, 1), onehot], dim=1))
    return torch.cat(per_cam)


def image_token_coords(
    input_ids: torch.Tensor, image_token_id: int, grids: torch.Tensor, merge: int, n_cams: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each image token sits: (x, y) of its merged patch in [-1, 1] and a one-hot of its camera.

    input_ids [B, S]; grids [B * n_cams, 3] (t, h, w in patches, cameras in order inside a row, the same for
    every row). Qwen2.5-VL's merged visual tokens come out in row-major order of the (h / merge, w / merge)
    grid of each image. Returns (coords [B, S, 2 + n_cams], image_mask [B, S]).
    """
    b, s = input_ids.shape
    mask = input_ids == image_token_id  # [B, S]
    row = _grid_coords(tuple(tuple(int(v) for v in g) for g in grids[:n_cams].tolist()), merge)
    counts = mask.sum(1)
    if not bool((counts == row.shape[0]).all()):
        raise ValueError(f"image tokens per row {counts.tolist()} do not match the grids ({row.shape[0]})")
    coords = torch.zeros(b, s, 2 + n_cams, device=input_ids.device)
    coords[mask] = row.to(input_ids.device).repeat(b, 1)  # row-major over [B, S]: rows in order
    return coords, mask


def select_layers(spec: str, num_layers: int) -> list[int]:
    """Which of the `num_layers + 1` hidden states (0 = embeddings) a head reads.

    `all` = every transformer layer output (1..L); `last` = L; `last_k:N`; or a comma list like `1,2`.
    """
    if spec == "all":
        return list(range(1, num_layers + 1))
    if spec == "last":
        return [num_layers]
    if spec.startswith("last_k:"):
        k = int(spec.split(":", 1)[1])
        return list(range(max(1, num_layers - k + 1), num_layers + 1))
    try:
        layers = [int(s) for s in spec.split(",")]
    except ValueError:
        raise ValueError(
            f"hidden_layers={spec!r}: use 'all', 'last', 'last_k:N' or a list like '1,2'"
        ) from None
    bad = [i for i in layers if not 0 <= i <= num_layers]
    if bad:
        raise ValueError(f"hidden_layers={spec!r}: layers {bad} outside 0..{num_layers}")
    return layers
