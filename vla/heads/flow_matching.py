"""`flow_matching`: a small action expert denoising an action chunk by flow matching (pi0 / SmolVLA style).

- Backbone side: a few learned query tokens are appended to the backbone input (they gather the scene and
  instruction through the backbone's attention); the expert cross-attends to their hidden states AND to the
  whole prefix (image + text tokens) from several layers, mixed with learned weights (VLA-Adapter: all layers
  beat the last one).
- Expert: a 2-layer transformer over H noisy action tokens + a state token, with a sinusoidal time embedding.
- Training (pi0): x_t = t * noise + (1 - t) * action, t ~ Beta(1.5, 1) scaled to (0.001, 1); the expert
  predicts the velocity u = noise - action; MSE, padding steps masked.
- Grounding (datasets with privileged targets, `aux_weight` > 0): the first query's hidden state points at the
  target and goal in each image and predicts their 3D positions (`vla.heads.grounding`); the predictions join
  the state token the expert reads, and their losses are added with weight `aux_weight`.
- Sampling: Euler integration from t = 1 (noise) to 0 in `num_steps` steps; a fixed generator seed can be
  given.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vla.features import BackboneFeatures
from vla.heads.base import ActionHead, HeadDims, LayerMix, masked_mean, register_head
from vla.heads.grounding import Grounding


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t [B] in [0, 1] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    ang = t[:, None] * freqs[None] * 1000.0
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


@register_head("flow_matching")
class FlowMatchingHead(ActionHead):
    def __init__(
        self,
        dims: HeadDims,
        expert_dim: int = 128,
        expert_layers: int = 2,
        num_queries: int = 4,
        num_steps: int = 10,
        aux_weight: float = 1.0,
        **grounding: Any,
    ):
        super().__init__()
        self.dims, self.num_steps, self.expert_dim, self.aux_weight = dims, num_steps, expert_dim, aux_weight
        self.num_query_tokens = num_queries
        self.queries = nn.Parameter(torch.randn(num_queries, dims.hidden) * 0.02)
        self.mix = LayerMix(dims.num_layers_read, dims.hidden)
        self.ctx_proj = nn.Linear(dims.hidden, expert_dim)
        self.action_in = nn.Linear(dims.action_dim, expert_dim)
        self.grounding = Grounding(dims, **grounding) if dims.aux_dim and aux_weight > 0 else None
        g_dim = self.grounding.out_dim if self.grounding else 0
        self.state_in = nn.Linear(dims.state_dim + g_dim, expert_dim)
        self.time_mlp = nn.Sequential(
            nn.Linear(expert_dim, expert_dim), nn.SiLU(), nn.Linear(expert_dim, expert_dim)
        )
        self.pos = nn.Parameter(torch.randn(dims.chunk + 1, expert_dim) * 0.02)
        layer = nn.TransformerDecoderLayer(
            expert_dim,
            nhead=4,
            dim_feedforward=expert_dim * 4,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.expert = nn.TransformerDecoder(layer, expert_layers)
        self.action_out = nn.Linear(expert_dim, dims.action_dim)

    def query_embeddings(self, batch_size: int) -> torch.Tensor:
        return self.queries.unsqueeze(0).expand(batch_size, -1, -1)  # [B, Q, D]

    def _velocity(self, ctx, ctx_pad, state, x_t, t):
        tok = self.action_in(x_t) + self.time_mlp(time_embedding(t, self.expert_dim))[:, None]  # [B, H, E]
        seq = torch.cat([self.state_in(state)[:, None], tok], dim=1) + self.pos  # [B, H+1, E]
        out = self.expert(seq, ctx, memory_key_padding_mask=ctx_pad)  # [B, H+1, E]
        return self.action_out(out[:, 1:])  # [B, H, A]

    def _context(
        self,
        feats: BackboneFeatures,
        state: torch.Tensor,
        oracle: dict | None = None,
        teacher: dict | None = None,
    ):
        """Expert memory [B, S, E] + padding mask, the state input [B, S' (+ F)] and grounding predictions."""
        ctx = self.ctx_proj(self.mix(feats.hidden_states))  # [B, S, E]: prefix + queries, all layers mixed
        pred = {}
        if self.grounding is not None:
            q0 = self.mix(feats.queries)[:, 0]  # [B, D]
            pred, found = self.grounding(q0, feats, oracle=oracle, state=state, teacher=teacher)  # [B, F]
            state = torch.cat([state, found], dim=-1)
        return ctx, feats.attention_mask == 0, state, pred  # mask: True = padding (ignored)

    def loss(self, feats, state, actions, is_pad, aux=None):
        ctx, ctx_pad, state, pred = self._context(feats, state, teacher=aux)
        b = actions.shape[0]
        t = torch.distributions.Beta(1.5, 1.0).sample((b,)).to(actions.device) * 0.999 + 0.001  # [B]
        noise = torch.randn_like(actions)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions  # [B, H, A]
        v = self._velocity(ctx, ctx_pad, state, x_t, t)
        mse = masked_mean(((v - (noise - actions)) ** 2).mean(-1), is_pad)
        extra, metrics = self.grounding.loss(pred, aux, self.aux_weight) if pred else (0.0, {})
        return mse + extra, {"flow_mse": float(mse.detach()), **metrics}

    @torch.no_grad()
    def predict(self, feats, state, generator: torch.Generator | None = None, oracle: dict | None = None):
        return self.predict_with_grounding(feats, state, oracle, generator)[0]

    @torch.no_grad()
    def predict_with_grounding(self, feats, state, oracle=None, generator: torch.Generator | None = None):
        ctx, ctx_pad, state, pred = self._context(feats, state, oracle)
        b = state.shape[0]
        x = torch.randn(b, self.dims.chunk, self.dims.action_dim, generator=generator, device=state.device)
        dt = 1.0 / self.num_steps
        for i in range(self.num_steps):
            t = torch.full((b,), 1.0 - i * dt, device=state.device)
            x = x - dt * self._velocity(ctx, ctx_pad, state, x, t)
        return x, pred.get("xyz")  # [B, H, A], [B, P * 3] or None
