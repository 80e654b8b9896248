"""`l1_chunk`: OpenVLA-OFT-style parallel decoding.

H learned action query tokens are appended to the backbone input; they attend (through the backbone's own
attention) to the image and instruction tokens. Their hidden states from several layers are mixed (learned
softmax weights, VLA-Adapter) and, with the proprio state, mapped by an MLP to the whole chunk in one pass.
A spatial soft-argmax readout (`SpatialKeypoints`) gives the MLP the image coordinates each query attends to.
Loss: L1 on the normalized actions, padding steps masked.
"""

from __future__ import annotations

import torch
from torch import nn

from vla.features import BackboneFeatures
from vla.heads.base import ActionHead, HeadDims, LayerMix, SpatialKeypoints, masked_mean, register_head


@register_head("l1_chunk")
class L1ChunkHead(ActionHead):
    def __init__(self, dims: HeadDims, mlp_hidden: int = 256, keypoints: int = 4):
        super().__init__()
        self.dims = dims
        self.num_query_tokens = dims.chunk
        self.queries = nn.Parameter(torch.randn(dims.chunk, dims.hidden) * 0.02)
        self.mix = LayerMix(dims.num_layers_read, dims.hidden)
        self.state_proj = nn.Linear(dims.state_dim, dims.hidden)
        self.keypoints = (
            SpatialKeypoints(dims.hidden, dims.num_layers_read, keypoints, 2 + dims.n_cameras)
            if keypoints
            else None
        )
        kp_dim = self.keypoints.out_dim if self.keypoints else 0
        self.mlp = nn.Sequential(
            nn.Linear(2 * dims.hidden + kp_dim, mlp_hidden),
            nn.GELU(),
            nn.Linear(mlp_hidden, mlp_hidden),
            nn.GELU(),
            nn.Linear(mlp_hidden, dims.action_dim),
        )

    def query_embeddings(self, batch_size: int) -> torch.Tensor:
        return self.queries.unsqueeze(0).expand(batch_size, -1, -1)  # [B, H, D]

    def predict(self, feats: BackboneFeatures, state: torch.Tensor) -> torch.Tensor:
        q = self.mix(feats.queries)  # [B, H, D]
        s = self.state_proj(state).unsqueeze(1).expand_as(q)  # [B, H, D]
        parts = [q, s]
        if self.keypoints is not None:
            parts.append(self.keypoints(q, feats))  # [B, H, K * (2 + C)]
        return self.mlp(torch.cat(parts, dim=-1))  # [B, H, A]

    def loss(self, feats, state, actions, is_pad):
        pred = self.predict(feats, state)  # [B, H, A]
        l1 = masked_mean((pred - actions).abs().mean(-1), is_pad)
        return l1, {"l1": float(l1.detach())}
