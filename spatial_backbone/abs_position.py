"""An absolute 2D position signal on Qwen2.5-VL's vision patch embeddings (opt-in: `backbone.abs_pos=true`).

Why: Qwen2.5-VL has only relative positions (2D rotary in the vision tower, M-RoPE in the language model),
which shape attention scores but never enter the values, so an image token's hidden state says where it is
only through what it shows. Measured on the tiny backbone (docs/sft.md, session 24): a linear probe reads a
token's image row from its hidden state (R^2 0.7-0.9: the table recedes towards the top) but hardly its
column (R^2 0.28-0.35), before and after SFT, so left/right relations and x coordinates cannot be read out of
the tokens an answer attends to. DESIGN.md section 6 lists the lever; ViT (Dosovitskiy et al., 2020) and
MAE's fixed 2D sin-cos embedding are the standard form.

Design: fixed (weight-free) sin-cos features of each patch's normalized (row, col) centre, in the patch order
of the Qwen2-VL image processor ([t, h/m, w/m, m, m]), added to the patch embedding. The flag lives in the
vision config (`svla_abs_pos`), so a saved backbone carries it and `build_backbone` re-applies it on load;
the module forwards are wrapped per instance (as `factory.patch_embed_as_matmul` does), so `copy.deepcopy`
gives an independent copy. Off by default: real checkpoints were trained without it.
"""

from __future__ import annotations

import math
import types

import torch
from torch import nn

ATTR = "svla_abs_pos"


def position_table(grid_thw: torch.Tensor, dim: int, merge: int) -> torch.Tensor:
    """[N_patches, dim] sin-cos features of every patch's normalized (row, col), images in order."""
    n_freq = dim // 4
    freqs = (
        math.pi * torch.logspace(0, math.log10(64), n_freq) if n_freq > 1 else torch.full((n_freq,), math.pi)
    )
    out = []
    for t, h, w in grid_thw.tolist():
        bh = torch.arange(h // merge).view(-1, 1, 1, 1)
        bw = torch.arange(w // merge).view(1, -1, 1, 1)
        i = torch.arange(merge).view(1, 1, -1, 1)
        j = torch.arange(merge).view(1, 1, 1, -1)
        shape = (h // merge, w // merge, merge, merge)
        row = (bh * merge + i).expand(shape).reshape(-1)  # [h*w] in the processor's patch order
        col = (bw * merge + j).expand(shape).reshape(-1)
        y = ((row + 0.5) / h)[:, None] * freqs  # [h*w, F]
        x = ((col + 0.5) / w)[:, None] * freqs
        feats = torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], -1)  # [h*w, 4F]
        out.append(feats.repeat(int(t), 1))
    table = torch.cat(out)
    return nn.functional.pad(table, (0, dim - table.shape[1]))  # [N, dim]


def _visual_forward(self, hidden_states: torch.Tensor, grid_thw: torch.Tensor, **kwargs):
    self.patch_embed.svla_grid = grid_thw
    try:
        return type(self).forward(self, hidden_states, grid_thw, **kwargs)
    finally:
        self.patch_embed.svla_grid = None


def _embed_with_positions(self, hidden_states: torch.Tensor) -> torch.Tensor:
    emb = self.svla_inner_forward(hidden_states)  # [N, D]
    grid = self.svla_grid
    if grid is None:
        raise RuntimeError("the patch embedding with absolute positions must be called by the vision tower")
    table = position_table(grid, emb.shape[-1], self.svla_merge)  # [N, D]
    return emb + table.to(device=emb.device, dtype=emb.dtype)


def add_absolute_positions(model: nn.Module) -> None:
    """Turn the absolute position signal on for a Qwen2.5-VL `model` (sets the config flag; idempotent)."""
    inner = getattr(model, "model", model)
    vis = inner.visual
    setattr(model.config.vision_config, ATTR, True)
    if getattr(vis.patch_embed, "svla_inner_forward", None) is not None:
        return
    embed = vis.patch_embed
    embed.svla_inner_forward = embed.forward  # the matmul form (factory) or the class's own
    embed.svla_merge = vis.spatial_merge_size
    embed.svla_grid = None
    embed.forward = types.MethodType(_embed_with_positions, embed)
    vis.forward = types.MethodType(_visual_forward, vis)


def has_absolute_positions(model: nn.Module) -> bool:
    return bool(getattr(model.config.vision_config, ATTR, False))
