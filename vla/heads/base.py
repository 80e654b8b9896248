"""Action head interface and registry.

A head turns backbone features into an action chunk [B, H, A] (normalized units). It may ask the policy to
append `num_query_tokens` learned tokens to the backbone input (their hidden states come back in
`BackboneFeatures.queries`). `loss` trains it; `predict` samples a chunk. Heads are registered by name; the
policy builds one with `build_head(cfg, dims)`.
"""

from __future__ import annotations

import inspect
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
    n_cameras: int = 1
    aux_dim: int = 0  # size of the auxiliary 3D target (privileged target/goal positions); 0 = none
    aux_points: int = 0  # points whose image coordinates are supervised (target, goal); 0 = none


class ActionHead(nn.Module):
    num_query_tokens: int = 0

    def query_embeddings(self, batch_size: int) -> torch.Tensor | None:
        """[B, Q, D] learned embeddings appended to the backbone input, or None."""
        return None

    def loss(
        self,
        feats: BackboneFeatures,
        state: torch.Tensor,
        actions: torch.Tensor,
        is_pad: torch.Tensor,
        aux: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """aux: auxiliary targets when the batch has them (heads may ignore them): `xyz` [B, P*3] normalized
        3D positions, `uv` [B, P, C, 2] image coordinates per policy camera (|uv| > 1 = not in view)."""
        raise NotImplementedError

    def predict(
        self, feats: BackboneFeatures, state: torch.Tensor, oracle: dict | None = None
    ) -> torch.Tensor:
        """oracle: true grounding targets (`aux` of the processor) that replace the head's own grounding
        predictions, for heads with grounding (`svla-eval oracle_grounding=true`, a diagnostic)."""
        raise NotImplementedError

    def predict_with_grounding(
        self, feats: BackboneFeatures, state: torch.Tensor, oracle: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The chunk [B, H, A] and the head's own 3D target/goal prediction [B, P * 3] (normalized), or None
        for heads without grounding. The prediction is the head's even under `oracle`: `svla-eval` compares
        it with the true positions to measure perception at rollout."""
        return self.predict(feats, state, oracle=oracle), None


HEADS: dict[str, Callable[..., ActionHead]] = {}


def register_head(name: str):
    def deco(cls):
        if name in HEADS:
            raise ValueError(f"head {name!r} registered twice")
        HEADS[name] = cls
        return cls

    return deco


def head_kwarg_names(name: str) -> list[str]:
    """The `head.kwargs` keys head `name` accepts: its constructor's own, plus the grounding module's when
    the constructor forwards `**grounding` to it (`vla.heads.grounding.Grounding`)."""
    from vla.heads.grounding import Grounding  # grounding imports this module

    params = inspect.signature(HEADS[name].__init__).parameters
    keys = [k for k, p in params.items() if k not in ("self", "dims") and p.kind is not p.VAR_KEYWORD]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        grounding = inspect.signature(Grounding.__init__).parameters
        keys += [k for k in grounding if k not in ("self", "dims", "extra_dim")]
    return sorted(keys)


def build_head(name: str, dims: HeadDims, **kwargs) -> ActionHead:
    if name not in HEADS:
        raise ValueError(f"unknown action head {name!r}; valid heads: {sorted(HEADS)}")
    check_head_kwargs(name, kwargs)
    return HEADS[name](dims, **kwargs)


def check_head_kwargs(name: str, kwargs: dict) -> None:
    """A misspelt `head.kwargs` key is an error naming it and the valid keys, never a silent default."""
    valid = head_kwarg_names(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        keys = ", ".join(f"head.kwargs.{k}" for k in unknown)
        raise ValueError(f"{keys}: not an option of head {name!r}; valid keys: {valid}")


class LayerMix(nn.Module):
    """Softmax-weighted sum of several layers' hidden states, then LayerNorm: [L x [B, T, D]] -> [B, T, D]."""

    def __init__(self, n_layers: int, dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        w = torch.softmax(self.weights, dim=0)
        return self.norm(sum(wi * h for wi, h in zip(w, layers, strict=True)))


class SpatialKeypoints(nn.Module):
    """Learned queries attend over the image tokens and read out WHERE they attend: the attention-weighted
    image coordinates (spatial soft-argmax, Levine et al. 2016) and camera one-hot, per keypoint.

    Why: the learning probe (DESIGN.md section 6) found a tiny random-init VLM slow to regress object
    positions from hidden states; the soft-argmax hands the head explicit coordinates, and because the
    queries are the backbone's hidden states of tokens that read the instruction, they can pick WHICH object
    to point at.
    queries [B, Q, D] and image keys from several layers -> [B, Q, K * (2 + C)].
    """

    def __init__(self, dim: int, n_layers: int, n_keypoints: int, coord_dim: int):
        super().__init__()
        self.k, self.dim = n_keypoints, dim
        self.mix = LayerMix(n_layers, dim)
        self.q = nn.Linear(dim, n_keypoints * dim)
        self.key = nn.Linear(dim, dim)
        self.out_dim = n_keypoints * coord_dim

    def forward(self, queries: torch.Tensor, feats) -> torch.Tensor:
        b, nq, d = queries.shape
        keys = self.key(self.mix(feats.hidden_states))  # [B, S, D]
        q = self.q(queries).view(b, nq * self.k, d)  # [B, Q*K, D]
        logits = q @ keys.transpose(1, 2) / d**0.5  # [B, Q*K, S]
        logits = logits.masked_fill(~feats.image_mask[:, None, :], float("-inf"))
        attn = torch.softmax(logits, dim=-1)  # [B, Q*K, S]
        xy = attn @ feats.token_coords  # [B, Q*K, 2 + C]
        return xy.view(b, nq, -1)  # [B, Q, K * (2 + C)]


def masked_mean(x: torch.Tensor, is_pad: torch.Tensor) -> torch.Tensor:
    """Mean of per-step losses x [B, H] over steps that are not padding (is_pad [B, H], True = padded)."""
    keep = (~is_pad).float()
    return (x * keep).sum() / keep.sum().clamp_min(1.0)
