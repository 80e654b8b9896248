"""Fast Qwen2.5-VL image patchify for training loops and rollouts.

`Qwen2VLImageProcessor` costs ~5.6 ms per image batched (DESIGN.md section 6); this does the same rescale,
normalization and patch layout on a torch batch in a fraction of that. Images whose size already is a multiple
of 28 px within the pixel limits (our renders: 112, 224) are not resized, and then the output equals the
processor's exactly (tested). Other sizes are resized with antialiased bicubic interpolation, which differs
slightly from the processor's resize; rollouts and training both go through this same function, so they never
differ.
"""

from __future__ import annotations

import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize


class FastPatchifier:
    """[B, 3, H, W] floats in [0, 1] -> (`pixel_values` [B * N, C * T * P * P], `image_grid_thw` [B, 3])."""

    def __init__(self, image_processor):
        ip = image_processor
        self.patch, self.merge, self.temporal = ip.patch_size, ip.merge_size, ip.temporal_patch_size
        self.min_pixels = ip.size["shortest_edge"] if ip.size else ip.min_pixels
        self.max_pixels = ip.size["longest_edge"] if ip.size else ip.max_pixels
        self.mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.rescale = float(ip.rescale_factor)

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        return smart_resize(
            height,
            width,
            factor=self.patch * self.merge,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )

    def tokens_per_image(self, height: int, width: int) -> int:
        h, w = self.target_size(height, width)
        return (h // self.patch) * (w // self.patch) // self.merge**2

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        b, _, h, w = images.shape
        th, tw = self.target_size(h, w)
        # The processor rescales uint8 values by 1/255; our images are already in [0, 1].
        x = images.float() * 255.0
        if (th, tw) != (h, w):
            x = torch.nn.functional.interpolate(x, size=(th, tw), mode="bicubic", antialias=True).clamp(
                0, 255
            )
        x = (x * self.rescale - self.mean.to(x.device)) / self.std.to(x.device)  # [B, 3, th, tw]
        x = x.unsqueeze(1).expand(b, self.temporal, 3, th, tw)  # a still image fills the temporal patch
        gh, gw, m, p = th // self.patch, tw // self.patch, self.merge, self.patch
        x = x.reshape(b, 1, self.temporal, 3, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
        pixel_values = x.reshape(b * gh * gw, 3 * self.temporal * p * p)
        grid = torch.tensor([[1, gh, gw]] * b, dtype=torch.long, device=images.device)
        return pixel_values, grid
