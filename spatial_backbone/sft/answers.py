"""Next-token logits at a batch's answer positions: what the SFT loss and the GRPO anchor loss both read."""

from __future__ import annotations

from typing import Any

import torch

from spatial_backbone.sft.packing import IGNORE


def answer_logits(backbone, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits where an answer token is next, and those tokens: [N, V], [N] (a `PackedCollator` batch)."""
    out = backbone.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        pixel_values=batch["pixel_values"],
        image_grid_thw=batch["image_grid_thw"],
        use_cache=False,
    )
    hidden = out.last_hidden_state[:, :-1]  # [B, S-1, D]: position s predicts token s+1
    targets = batch["labels"][:, 1:]  # [B, S-1]
    keep = targets != IGNORE  # [B, S-1]
    return backbone.lm_head(hidden[keep]).float(), targets[keep]  # [N, V], [N]
