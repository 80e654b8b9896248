"""Next-token logits at a batch's answer positions: what the SFT loss and the GRPO anchor loss both read."""

from __future__ import annotations

from typing import Any

import torch

from spatial_backbone.sft.packing import IGNORE


def answer_logits(backbone, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits where an answer token is next, and those tokens: [N, V], [N] (a `PackedCollator` batch)."""
    logits, targets, _ = answer_forward(backbone, batch)
    return logits, targets


def answer_forward(
    backbone, batch: dict[str, Any], hidden_layer: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`answer_logits` plus, if `hidden_layer` is given, the language model's hidden states [B, S, D] after
    that many decoder layers (0 = the input embeddings), from the same forward pass."""
    out = backbone.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        pixel_values=batch["pixel_values"],
        image_grid_thw=batch["image_grid_thw"],
        use_cache=False,
        output_hidden_states=hidden_layer is not None,
    )
    hidden = out.last_hidden_state[:, :-1]  # [B, S-1, D]: position s predicts token s+1
    targets = batch["labels"][:, 1:]  # [B, S-1]
    keep = targets != IGNORE  # [B, S-1]
    layer = out.hidden_states[hidden_layer] if hidden_layer is not None else None
    return backbone.lm_head(hidden[keep]).float(), targets[keep], layer  # [N, V], [N], [B, S, D]
