"""Instruction-conditioned FiLM on the vision tower (`policy.film=true`).

Design (RT-1, Brohan et al. 2022, FiLM-conditioned EfficientNet; FiLM, Perez et al. 2018): the instruction
modulates the visual features *before* they reach the language model, channel by channel,
`h <- h * (1 + gamma) + beta`, after the patch embedding and after every vision block. The learning probe of
DESIGN.md section 6 found that a from-scratch ViT + causal LM barely learns *which* object the words name
(attention must discover the binding), while a small CNN with FiLM learned it in minutes: multiplicative
conditioning turns "find the red cube" into "find the salient patch", which the tiny model learns as easily as
"where". As in RT-1 the last projection starts at zero, so an untrained FiLM is the identity and the
backbone's features are unchanged.

The instruction encoder reads the backbone's own token embeddings (no second vocabulary): a projection,
learned positions, one pre-norm transformer layer (word order matters: "the cube left of the ball") and a
masked mean. FiLM parameters are constant over an image, so Qwen2.5-VL's window reordering of patches inside
an image does not matter; images are ordered camera-major inside each row (`VLAProcessor`), so image i
belongs to row i // n_cameras.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

MAX_INSTRUCTION_TOKENS = 64


class VisionFiLM(nn.Module):
    def __init__(self, visual: nn.Module, text_hidden: int, n_cameras: int, dim: int = 128, heads: int = 4):
        super().__init__()
        sites = [visual.patch_embed, *visual.blocks]
        self.vision_hidden = int(visual.config.hidden_size)
        self.n_sites, self.n_cameras = len(sites), n_cameras
        self.proj = nn.Linear(text_hidden, dim)
        self.pos = nn.Parameter(torch.randn(MAX_INSTRUCTION_TOKENS, dim) * 0.02)
        self.encoder = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.out = nn.Linear(dim, self.n_sites * 2 * self.vision_hidden)
        nn.init.zeros_(self.out.weight)  # identity at init (RT-1)
        nn.init.zeros_(self.out.bias)
        self._patch_params: torch.Tensor | None = None  # [N, sites, 2, Dv] while conditioned
        for i, site in enumerate(sites):  # hooks are not module state: nothing extra in the checkpoint
            site.register_forward_hook(self._hook(i))

    def _hook(self, site: int):
        def modulate(_module, _inputs, out: torch.Tensor) -> torch.Tensor | None:
            p = self._patch_params
            if p is None:
                return None
            if p.shape[0] != out.shape[0]:
                raise RuntimeError(
                    f"FiLM has parameters for {p.shape[0]} patches; the vision tower has {out.shape[0]}"
                )
            gamma, beta = p[:, site, 0].to(out.dtype), p[:, site, 1].to(out.dtype)  # [N, Dv]
            return out * (1.0 + gamma) + beta

        return modulate

    def params(self, instr_embeds: torch.Tensor, instr_mask: torch.Tensor) -> torch.Tensor:
        """instr_embeds [B, L, Dt], instr_mask [B, L] -> FiLM parameters [B, sites, 2, Dv]."""
        b, n = instr_embeds.shape[:2]
        if n > MAX_INSTRUCTION_TOKENS:
            raise ValueError(f"instruction has {n} tokens; FiLM reads at most {MAX_INSTRUCTION_TOKENS}")
        x = self.proj(instr_embeds.float()) + self.pos[:n]  # [B, L, d]
        pad = instr_mask == 0  # [B, L]
        x = self.encoder(x, src_key_padding_mask=pad)
        w = instr_mask.float().unsqueeze(-1)  # [B, L, 1]
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1.0)  # [B, d]
        return self.out(pooled).view(b, self.n_sites, 2, self.vision_hidden)

    @contextlib.contextmanager
    def conditioned(
        self, instr_embeds: torch.Tensor, instr_mask: torch.Tensor, image_grid_thw: torch.Tensor
    ) -> Iterator[None]:
        """Within the block, every vision tower call is modulated by these rows' instructions."""
        per_row = self.params(instr_embeds, instr_mask)  # [B, sites, 2, Dv]
        n_images = image_grid_thw.shape[0]
        if n_images != per_row.shape[0] * self.n_cameras:
            raise ValueError(
                f"{n_images} images for {per_row.shape[0]} rows x {self.n_cameras} cameras: FiLM cannot "
                "assign images to instructions"
            )
        patches = image_grid_thw.prod(-1)  # [B * cams]
        per_image = per_row.repeat_interleave(self.n_cameras, dim=0)  # [B * cams, sites, 2, Dv]
        self._patch_params = per_image.repeat_interleave(patches.to(per_image.device), dim=0)  # [N, ...]
        try:
            yield
        finally:
            self._patch_params = None
