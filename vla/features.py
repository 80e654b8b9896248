"""What the backbone hands to an action head, and which hidden layers a head reads.

Heads read several layers, not only the last: VLA-Adapter's ablation (DESIGN.md section 4) found
last-layer-only heads lose ~10 points on LIBERO-Long and collapse with a frozen backbone, while all-layer
conditioning holds up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BackboneFeatures:
    """hidden_states: per selected layer, [B, S, D]. attention_mask: [B, S] (1 = real token, left padding).
    query_start: index where the head's suffix tokens begin (they run to the end of the sequence)."""

    hidden_states: list[torch.Tensor]
    attention_mask: torch.Tensor
    query_start: int

    @property
    def queries(self) -> list[torch.Tensor]:  # per layer [B, Q, D]
        return [h[:, self.query_start :] for h in self.hidden_states]


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
