"""`l1_chunk`: OpenVLA-OFT-style parallel decoding.

H learned action query tokens are appended to the backbone input; they attend (through the backbone's own
attention) to the image and instruction tokens. Their hidden states from several layers are mixed (learned
softmax weights, VLA-Adapter) and, with the proprio state, mapped by an MLP to the whole chunk in one pass.
A spatial soft-argmax readout (`SpatialKeypoints`) gives the MLP the image coordinates each query attends to.
Loss: L1 on the normalized actions, padding steps masked.
With privileged targets in the dataset (`HeadDims.aux_dim` > 0), the first query also points at the target
and the goal in every camera image (`vla.heads.grounding`, supervised by their true image coordinates)
and predicts their 3D positions; both losses are weighted by `aux_weight`, and the MLP reads the
pointers and the 3D prediction. Nothing privileged is read at rollout.

`motion=true` splits the policy at those 3D positions (`vla.heads.motion`, learning by cheating): the chunk
comes from a motion decoder that reads the state, the positions and the instruction words; it trains on the
true positions (the batch's and, with `svla-train motion_batch=N`, N image-free frames per step), and at
rollout reads the grounding head's predictions. The query tokens then serve the grounding alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vla.features import BackboneFeatures
from vla.heads.base import ActionHead, HeadDims, LayerMix, SpatialKeypoints, masked_mean, register_head
from vla.heads.grounding import Grounding
from vla.heads.motion import MotionDecoder


@register_head("l1_chunk")
class L1ChunkHead(ActionHead):
    def __init__(
        self,
        dims: HeadDims,
        mlp_hidden: int = 256,
        keypoints: int = 4,
        aux_weight: float = 1.0,
        motion: bool = False,
        motion_hidden: int = 1024,
        **grounding: Any,
    ):
        super().__init__()
        self.dims, self.aux_weight = dims, aux_weight
        self.num_query_tokens = dims.chunk
        self.queries = nn.Parameter(torch.randn(dims.chunk, dims.hidden) * 0.02)
        self.mix = LayerMix(dims.num_layers_read, dims.hidden)
        self.state_proj = None if motion else nn.Linear(dims.state_dim, dims.hidden)
        self.keypoints = (
            SpatialKeypoints(dims.hidden, dims.num_layers_read, keypoints, 2 + dims.n_cameras)
            if keypoints
            else None
        )
        kp_dim = self.keypoints.out_dim if self.keypoints else 0
        self.grounding = Grounding(dims, kp_dim, **grounding) if dims.aux_dim and aux_weight > 0 else None
        g_dim = self.grounding.out_dim if self.grounding else 0
        if motion and self.grounding is None:
            raise ValueError(
                f"head.kwargs.motion=true reads the grounding head's 3D positions, which needs "
                f"privileged.target_goal in the dataset and aux_weight > 0 (got aux_weight={aux_weight!r}, "
                f"privileged positions in the statistics: {bool(dims.aux_dim)})"
            )
        self.motion = MotionDecoder(dims, motion_hidden) if motion else None
        self.mlp = (
            None
            if motion
            else nn.Sequential(
                nn.Linear(2 * dims.hidden + kp_dim + g_dim, mlp_hidden),
                nn.GELU(),
                nn.Linear(mlp_hidden, mlp_hidden),
                nn.GELU(),
                nn.Linear(mlp_hidden, dims.action_dim),
            )
        )

    def query_embeddings(self, batch_size: int) -> torch.Tensor:
        return self.queries.unsqueeze(0).expand(batch_size, -1, -1)  # [B, H, D]

    def _forward(
        self,
        feats: BackboneFeatures,
        state: torch.Tensor,
        oracle: dict | None = None,
        teacher: dict | None = None,
    ):
        q = self.mix(feats.queries)  # [B, H, D]
        kp = self.keypoints(q, feats) if self.keypoints is not None else None  # [B, H, K * (2 + C)]
        if self.motion is not None:
            kp0 = None if kp is None else kp[:, 0]
            aux, _ = self.grounding(q[:, 0], feats, kp0, state=state)  # its own predictions
            true = oracle if oracle is not None else teacher  # rollout diagnostic / training: true positions
            xyz = true["xyz"].to(aux["xyz"]) if true else aux["xyz"]  # [B, P * 3]
            return self.motion_chunk(state, xyz, feats.instruction, feats.instruction_mask), aux
        s = self.state_proj(state).unsqueeze(1).expand_as(q)  # [B, H, D]
        parts = [q, s] if kp is None else [q, s, kp]
        aux: dict[str, torch.Tensor] = {}
        if self.grounding is not None:
            kp0 = None if kp is None else kp[:, 0]
            aux, found = self.grounding(q[:, 0], feats, kp0, oracle, state, teacher)  # ..., [B, F]
            parts.append(found.unsqueeze(1).expand(-1, q.shape[1], -1))  # [B, H, F]
        return self.mlp(torch.cat(parts, dim=-1)), aux  # [B, H, A], {"xyz", "uv"}

    def motion_chunk(
        self, state: torch.Tensor, xyz: torch.Tensor, words: torch.Tensor, words_mask: torch.Tensor
    ) -> torch.Tensor:
        """The motion decoder's chunk [B, H, A] for normalized state [B, S] and positions xyz [B, P * 3]."""
        return self.motion(state, xyz, self.grounding.relative(xyz, state), words, words_mask)

    def motion_loss(
        self,
        state: torch.Tensor,
        xyz: torch.Tensor,
        actions: torch.Tensor,
        is_pad: torch.Tensor,
        words: torch.Tensor,
        words_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 of the motion decoder on image-free frames (true positions; `vla.motion_data`)."""
        pred = self.motion_chunk(state, xyz, words, words_mask)  # [B, H, A]
        l1 = masked_mean((pred - actions).abs().mean(-1), is_pad)
        return l1, {"motion_l1": float(l1.detach())}

    def predict(
        self, feats: BackboneFeatures, state: torch.Tensor, oracle: dict | None = None
    ) -> torch.Tensor:
        return self._forward(feats, state, oracle)[0]

    def predict_with_grounding(self, feats, state, oracle=None):
        chunk, aux = self._forward(feats, state, oracle)  # [B, H, A], {"xyz": [B, P * 3], ...}
        return chunk, aux.get("xyz")

    def loss(self, feats, state, actions, is_pad, aux=None):
        pred, aux_pred = self._forward(feats, state, teacher=aux)  # [B, H, A], {"xyz", "uv"}
        l1 = masked_mean((pred - actions).abs().mean(-1), is_pad)
        extra, metrics = self.grounding.loss(aux_pred, aux, self.aux_weight) if aux_pred else (0.0, {})
        return l1 + extra, {"l1": float(l1.detach()), **metrics}
