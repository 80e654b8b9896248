"""Typed configuration of a backbone; `conf/backbone/*.yaml` mirrors it."""

from __future__ import annotations

from dataclasses import dataclass

from spatial_backbone.presets import PRESETS


@dataclass
class BackboneConfig:
    """Which Qwen2.5-VL to build and how to run it.

    name_or_path: a tiny preset name (see `spatial_backbone.presets.PRESETS`), a local directory holding a
        Qwen2.5-VL checkpoint (a tuned backbone, or a downloaded Qwen2.5-VL-3B / VST-3B / SpatialThinker-7B /
        Spatial-SSRL-7B), or a hub id such as `Qwen/Qwen2.5-VL-3B-Instruct` (needs
        network or a warm HF cache).
    seed: random-init seed of tiny presets (ignored for checkpoints).
    image_size: tiny presets cap images at image_size x image_size pixels (max_pixels = image_size**2); a
        112 px image is 16 visual tokens. For checkpoints, 0 keeps the checkpoint's own processor limits.
    min_image_size: smallest side the image processor resizes to (min_pixels = min_image_size**2).
    thinking: default to VST's thinking system prompt (`<think>...</think>` then the answer).
    abs_pos: add a fixed absolute 2D position signal to the vision patch embeddings (`abs_position.py`) of a
        new tiny preset. A checkpoint carries its own setting (saved in its vision config); asking for it
        on a checkpoint trained without it is an error.
    device, dtype, attn_implementation, num_threads: `auto` lets `spatial_backbone.device.resolve_runtime`
        decide (bf16 + flash_attention_2 on CUDA, fp32 + sdpa and one thread on small CPUs).
    """

    name_or_path: str = "tiny_1m"
    seed: int = 0
    image_size: int = 112
    min_image_size: int = 56
    thinking: bool = False
    abs_pos: bool = False
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "auto"
    num_threads: int = 0

    def __post_init__(self):
        if not self.name_or_path:
            raise ValueError(
                "backbone.name_or_path is empty: set backbone.name_or_path=<checkpoint directory or hub id>, "
                f"or pick a tiny preset: {sorted(PRESETS)}"
            )
        if self.image_size < 0 or (self.image_size and self.image_size < 28):
            raise ValueError(f"backbone.image_size={self.image_size} must be >= 28 (two 14 px patches) or 0")
        if self.min_image_size < 28:
            raise ValueError(f"backbone.min_image_size={self.min_image_size} must be >= 28")
        if self.num_threads < 0:
            raise ValueError(
                f"backbone.num_threads={self.num_threads} must be >= 0 (0 = decide automatically)"
            )

    @property
    def is_preset(self) -> bool:
        return self.name_or_path in PRESETS
