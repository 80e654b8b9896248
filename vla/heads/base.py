"""Action head interface and registry.

A head turns backbone features into an action chunk [B, H, A] (normalized units). It may ask the policy to
append `num_query_tokens` learned tokens to the backbone input (their hidden states come back in
`BackboneFeatures.queries`). `loss` trains it; `predict` samples a chunk. Heads are registered by name; the
policy builds one with `build_head(cfg, dims)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vla.features import BackboneFeatures


@dataclass
class HeadDims:
    """Sizes a head is built for: backbone hidden size, layers read, chunk length, action and state dims."""

    hidden: int
    num_layers_read: int
    chunk: int
    action_dim: int
    state_dim: int


class ActionHead(nn.Module):
    num_query_tokens: int = 0

    def query_embeddings(self, batch_size: int) -> torch.Tensor | None:
        """[B, Q, D] learned embeddings appended to the backbone input, or None."""
        return None

    def loss(
        self, feats: BackboneFeatures, state: torch.Tensor, actions: torch.Tensor, is_pad: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict(self, feats: BackboneFeatures, state: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


HEADS: dict[str, Callable[..., ActionHead]] = {}


def register_head(name: str):
    def deco(cls):
        if name in HEADS:
            raise ValueError(f"head {name!r} registered twice")
        HEADS[name] = cls
        return cls

    return deco


def build_head(name: str, dims: HeadDims, **kwargs) -> ActionHead:
    if name not in HEADS:
        raise ValueError(f"unknown action head {name!r}; valid heads: {sorted(HEADS)}")
    return HEADS[name](dims, **kwargs)


class LayerMix(nn.Module):
    """Softmax-weighted sum of several layers' hidden states, then LayerNorm: [L x [B, T, D]] -> [B, T, D]."""

    def __init__(self, n_layers: int, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        w = torch.softmax(self.weights, dim=0)
        return self.norm(sum(wi * h for wi, h in zip(w, layers, strict=True)))


def masked_mean(x: torch.Tensor, is_pad: torch.Tensor) -> torch.Tensor:
    """Mean of per-step losses x [B, H] over steps that are not padding (is_pad [B, H], True = padded)."""
    keep = (~is_pad).float()
    return (x * keep).sum() / keep.sum().clamp_min(1.0)
