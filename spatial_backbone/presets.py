"""Tiny Qwen2.5-VL presets: the real `Qwen2_5_VLForConditionalGeneration` at toy sizes, random init.

The sizes follow the verified tiny configuration in DESIGN.md section 6: M-RoPE sections sum to head_dim / 2,
patch 14, spatial merge 2 (a 112x112 image -> 16 visual tokens), temporal patch 2, window 112 px (one window
per 112 px image: the CPU attention path loops over windows) with the last vision block on full attention.
`tiny_1m` (~1M parameters) is the embedded default; `tiny_5m` (~5M) is the
next size up; `tiny_1m_v128` is `tiny_1m`'s language model with `tiny_5m`'s vision tower (128 wide, 4 blocks),
for the finding that the tiny tower, not the language side, is where "which object" fails (README, VLA).
Presets live in a registry: add one with `register_preset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class TinyPreset:
    """Sizes of one tiny preset. Every field maps onto a Qwen2.5-VL text or vision config field."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    mrope_section: tuple[int, int, int] = (4, 6, 6)
    bpe_vocab_size: int = 512
    max_position_embeddings: int = 4096
    fullatt_block_indexes: tuple[int, ...] = field(default=())

    def __post_init__(self):
        head_dim = self.text_hidden // self.text_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(
                f"mrope_section={self.mrope_section} must sum to head_dim/2={head_dim // 2} "
                f"(text_hidden={self.text_hidden} / text_heads={self.text_heads})"
            )


PRESETS: dict[str, TinyPreset] = {}
VISION_FIELDS = (
    "vision_hidden",
    "vision_depth",
    "vision_heads",
    "vision_intermediate",
    "fullatt_block_indexes",
)


def register_preset(name: str, preset: TinyPreset) -> None:
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    PRESETS[name] = preset


register_preset(
    "tiny_1m",
    TinyPreset(
        text_hidden=128,
        text_layers=2,
        text_heads=4,
        text_kv_heads=2,
        text_intermediate=512,
        vision_hidden=64,
        vision_depth=2,
        vision_heads=2,
        vision_intermediate=256,
        fullatt_block_indexes=(1,),
    ),
)
register_preset(
    "tiny_5m",
    TinyPreset(
        text_hidden=256,
        text_layers=4,
        text_heads=8,
        text_kv_heads=4,
        text_intermediate=768,
        vision_hidden=128,
        vision_depth=4,
        vision_heads=4,
        vision_intermediate=512,
        fullatt_block_indexes=(1, 3),
    ),
)
register_preset(  # tiny_1m's language model, tiny_5m's vision tower
    "tiny_1m_v128",
    replace(
        PRESETS["tiny_1m"],
        **{f: getattr(PRESETS["tiny_5m"], f) for f in VISION_FIELDS},
    ),
)


def get_preset(name: str) -> TinyPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown tiny preset {name!r}; valid presets: {sorted(PRESETS)}")
    return PRESETS[name]
