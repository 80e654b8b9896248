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


class AuxTargets(nn.Module):
    """Predicts the privileged target/goal positions from head features (L1 when the batch has them).

    Why: the policy has to find the object the words name before it can act on it, and the action loss alone
    teaches that slowly (DESIGN.md section 6, learning probe). The simulator knows where the target and goal
    are, so the head learns to say where they are (an auxiliary loss on the training data) and the action
    decoder reads that prediction. At rollout nothing privileged is read: the prediction comes from the image.
    x [B, F] -> [B, P] (normalized positions).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128):
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor | None:
        return None if target is None else (pred - target).abs().mean()


class TargetPointers(nn.Module):
    """Where the target and the goal are in each camera image: one query per point attends over that camera's
    image tokens; the attention-weighted token centres (spatial soft-argmax) are the answer, [B, P, C, 2].

    Supervised with the points' true image coordinates (`uv_loss`), this trains the attention itself to pick
    out the object the instruction names -- a direct grounding signal, where a 3D regression from pooled
    features reaches the attention only through an MLP.
    q0 [B, D] (a query token's hidden state) -> [B, P, C, 2] in [-1, 1].
    """

    def __init__(self, dim: int, n_layers: int, n_points: int, n_cameras: int):
        super().__init__()
        self.p, self.c, self.dim = n_points, n_cameras, dim
        self.mix = LayerMix(n_layers, dim)
        self.q = nn.Linear(dim, n_points * dim)
        self.key = nn.Linear(dim, dim)
        self.out_dim = n_points * n_cameras * 2

    def forward(self, q0: torch.Tensor, feats) -> torch.Tensor:
        b, d = q0.shape
        keys = self.key(self.mix(feats.hidden_states))  # [B, S, D]
        q = self.q(q0).view(b, self.p, d)  # [B, P, D]
        logits = q @ keys.transpose(1, 2) / d**0.5  # [B, P, S]
        xy = feats.token_coords[..., :2]  # [B, S, 2]
        out = []
        for c in range(self.c):
            on_cam = feats.image_mask & (feats.token_coords[..., 2 + c] > 0.5)  # [B, S]
            attn = torch.softmax(logits.masked_fill(~on_cam[:, None, :], float("-inf")), dim=-1)  # [B, P, S]
            out.append(attn @ xy)  # [B, P, 2]
        return torch.stack(out, dim=2)  # [B, P, C, 2]

    @staticmethod
    def uv_loss(pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor | None:
        """L1 over the (point, camera) pairs in view (|u|, |v| <= 1); None without a target."""
        if target is None:
            return None
        seen = (target.abs() <= 1.0).all(-1)  # [B, P, C]
        err = (pred - target).abs().sum(-1)  # [B, P, C]
        return (err * seen).sum() / seen.sum().clamp_min(1)


def masked_mean(x: torch.Tensor, is_pad: torch.Tensor) -> torch.Tensor:
    """Mean of per-step losses x [B, H] over steps that are not padding (is_pad [B, H], True = padded)."""
    keep = (~is_pad).float()
    return (x * keep).sum() / keep.sum().clamp_min(1.0)
