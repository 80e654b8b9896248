"""Backbone factory: `build_backbone(cfg) -> (model, processor)` for tiny presets and real checkpoints.

Design:
- Tiny presets build the real `transformers.Qwen2_5_VLForConditionalGeneration` from a small config (random
  init from `cfg.seed`), with the project's own byte-level BPE (`tokenizer.py`) and the real
  `Qwen2_5_VLProcessor` (image processor, video processor, Qwen2.5-VL chat template). Nothing is downloaded.
- Checkpoints (local directory or hub id) load through `from_pretrained`, never with `trust_remote_code`. A
  directory that is not a Qwen2.5-VL checkpoint is rejected with what was found there.
- `save_backbone` writes model + processor atomically (temporary sibling directory, then rename), and the
  result loads back through `build_backbone(BackboneConfig(name_or_path=<dir>))`.
- Device, dtype and attention come from `device.resolve_runtime` only.
- The vision patch embedding runs as the matmul it is (`patch_embed_as_matmul`): Qwen2.5-VL's `Conv3d` has
  kernel == stride, and PyTorch's CPU conv3d is 2-4x slower than the same product as a `linear`
  (`benchmarks/backbone.py` prints the ratio). Same weights and state dict; outputs equal up to float
  rounding.
- `abs_pos=true` adds a fixed absolute 2D position signal to the patch embeddings (`abs_position.py`); the
  flag is saved in the vision config and re-applied whenever the backbone is loaded.
- The position tables Qwen2.5-VL rebuilds in Python on every forward (vision rotary table, window index,
  M-RoPE positions) are memoized per input shape/content (`position_cache.cache_positions`).
"""

from __future__ import annotations

import json
import logging
import os
import types
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from envs.atomic import atomic_dir
from spatial_backbone.abs_position import add_absolute_positions, has_absolute_positions
from spatial_backbone.config import BackboneConfig
from spatial_backbone.device import Runtime, apply_runtime, resolve_runtime
from spatial_backbone.position_cache import cache_positions
from spatial_backbone.presets import PRESETS, TinyPreset, get_preset
from spatial_backbone.prompts import QWEN2_5_VL_CHAT_TEMPLATE, THINK_SYSTEM_PROMPT
from spatial_backbone.tokenizer import train_tokenizer

log = logging.getLogger(__name__)

QWEN2_5_VL_MODEL_TYPE = "qwen2_5_vl"
PATCH_SIZE = 14
MERGE_SIZE = 2


class BackboneError(ValueError):
    """A backbone could not be built: unknown preset, not a Qwen2.5-VL checkpoint, unreadable path."""


def build_backbone(cfg: BackboneConfig) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """Build (model, processor) for a tiny preset or load a Qwen2.5-VL checkpoint; see `BackboneConfig`."""
    rt = resolve_runtime(cfg.device, cfg.dtype, cfg.attn_implementation, cfg.num_threads)
    apply_runtime(rt)
    if cfg.is_preset:
        model, processor = _build_tiny(cfg, get_preset(cfg.name_or_path), rt)
    else:
        model, processor = _load_checkpoint(cfg, rt)
    processor.svla_default_system_prompt = THINK_SYSTEM_PROMPT if cfg.thinking else None
    if cfg.abs_pos and not cfg.is_preset and not has_absolute_positions(model):
        raise BackboneError(
            f"backbone.abs_pos=true but {cfg.name_or_path!r} was trained without the absolute position "
            "signal (its vision config lacks svla_abs_pos): drop backbone.abs_pos or start from a tiny preset"
        )
    patch_embed_as_matmul(model)
    if cfg.abs_pos or has_absolute_positions(model):
        add_absolute_positions(model)
    cache_positions(model)
    model.eval()
    return model, processor


def _matmul_patch_embed(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """`Qwen2_5_VisionPatchEmbed.forward` as one matmul: patches [N, C*T*P*P] -> [N, D]."""
    if not isinstance(self.proj, nn.Conv3d) or self.proj.kernel_size != self.proj.stride:
        return type(self).forward(self, hidden_states)  # wrapped (e.g. by PEFT) or unusual: the original
    w = self.proj.weight  # [D, C, T, P, P]
    flat = hidden_states.to(w.dtype).reshape(-1, w[0].numel())  # [N, C*T*P*P], the conv's element order
    return nn.functional.linear(flat, w.reshape(w.shape[0], -1))  # [N, D]


def patch_embed_as_matmul(model: nn.Module) -> None:
    """Run the vision patch embedding of a Qwen2.5-VL `model` as a matmul (see the module docstring)."""
    embed = model.model.visual.patch_embed
    embed.forward = types.MethodType(_matmul_patch_embed, embed)


def set_image_limits(processor: Qwen2_5_VLProcessor, image_size: int, min_image_size: int) -> None:
    """Resize images and video frames to at most image_size**2 and at least min_image_size**2 pixels (the
    processor's `smart_resize` keeps the aspect ratio and rounds sides to multiples of 28)."""
    lo, hi = min_image_size**2, max(image_size, min_image_size) ** 2
    for proc in (processor.image_processor, processor.video_processor):
        proc.min_pixels, proc.max_pixels = lo, hi
        proc.size = {"shortest_edge": lo, "longest_edge": hi}


def build_tiny_processor(preset: TinyPreset, image_size: int, min_image_size: int) -> Qwen2_5_VLProcessor:
    """The real Qwen2.5-VL processor around the project's tokenizer, capped at image_size**2 pixels."""
    tokenizer = train_tokenizer(vocab_size=preset.bpe_vocab_size)
    pixels = {"min_pixels": min_image_size**2, "max_pixels": max(image_size, min_image_size) ** 2}
    image_processor = Qwen2VLImageProcessor(
        patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=2, **pixels
    )
    video_processor = Qwen2VLVideoProcessor(
        patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=2, **pixels
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    )


def tiny_model_config(preset: TinyPreset, tokenizer) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of the preset's sizes whose special token ids match `tokenizer`."""
    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in (
            "<|image_pad|>",
            "<|video_pad|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|im_end|>",
            "<|endoftext|>",
        )
    }
    vocab_size = -(-len(tokenizer) // 64) * 64  # round up to a multiple of 64
    text = dict(
        vocab_size=vocab_size,
        hidden_size=preset.text_hidden,
        intermediate_size=preset.text_intermediate,
        num_hidden_layers=preset.text_layers,
        num_attention_heads=preset.text_heads,
        num_key_value_heads=preset.text_kv_heads,
        max_position_embeddings=preset.max_position_embeddings,
        rope_scaling={"type": "mrope", "mrope_section": list(preset.mrope_section)},
        rope_theta=1e6,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
        use_cache=True,
    )
    vision = dict(
        depth=preset.vision_depth,
        hidden_size=preset.vision_hidden,
        intermediate_size=preset.vision_intermediate,
        num_heads=preset.vision_heads,
        out_hidden_size=preset.text_hidden,
        patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE,
        temporal_patch_size=2,
        window_size=PATCH_SIZE * MERGE_SIZE * 4,  # 112 px: one window per 112 px image
        fullatt_block_indexes=list(preset.fullatt_block_indexes),
        tokens_per_second=2,
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def _build_tiny(cfg: BackboneConfig, preset: TinyPreset, rt: Runtime):
    processor = build_tiny_processor(preset, cfg.image_size or 112, cfg.min_image_size)
    config = tiny_model_config(preset, processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, attn_implementation=rt.attn_implementation, dtype=rt.dtype
        )
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = None
    n = sum(p.numel() for p in model.parameters())
    log.info("built tiny preset %s: %.2fM parameters (seed %d)", cfg.name_or_path, n / 1e6, cfg.seed)
    return model.to(rt.device), processor


def inspect_checkpoint(path: Path) -> str | None:
    """Return None if `path` holds a Qwen2.5-VL checkpoint, else a description of what was found there."""
    if not path.is_dir():
        return f"{path} is not a directory"
    config_file = path / "config.json"
    listing = sorted(p.name for p in path.iterdir())[:20]
    if not config_file.is_file():
        return f"no config.json in {path} (found: {listing or 'an empty directory'})"
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"{config_file} is not valid JSON ({err})"
    model_type = config.get("model_type")
    if model_type != QWEN2_5_VL_MODEL_TYPE:
        return (
            f"{config_file} has model_type={model_type!r} (architectures={config.get('architectures')}), "
            f"expected {QWEN2_5_VL_MODEL_TYPE!r}"
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return f"{path} has a Qwen2.5-VL config.json but no weights (*.safetensors / *.bin); found: {listing}"
    return None


def _load_checkpoint(cfg: BackboneConfig, rt: Runtime):
    target = cfg.name_or_path
    path = Path(target).expanduser()
    looks_local = path.exists() or target.startswith((".", "/", "~")) or target.count("/") != 1
    if looks_local:
        problem = inspect_checkpoint(path)
        if problem:
            raise BackboneError(
                f"backbone {target!r} is neither a tiny preset ({sorted(PRESETS)}) nor a Qwen2.5-VL "
                f"checkpoint: {problem}"
            )
        target = str(path)
    kwargs = dict(dtype=rt.dtype, attn_implementation=rt.attn_implementation, trust_remote_code=False)
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(target, **kwargs)
        processor = AutoProcessor.from_pretrained(target, trust_remote_code=False)
    except OSError as err:
        raise BackboneError(
            f"could not load backbone {target!r} (a hub id? this needs network access or a warm HF cache; "
            f"valid tiny presets: {sorted(PRESETS)}): {err}"
        ) from err
    if not isinstance(processor, Qwen2_5_VLProcessor):
        raise BackboneError(f"{target!r} holds a {type(processor).__name__}, expected a Qwen2_5_VLProcessor")
    if cfg.image_size:
        set_image_limits(processor, cfg.image_size, cfg.min_image_size)
    log.info("loaded backbone from %s", target)
    return model.to(rt.device), processor


def save_backbone(model, processor, out_dir: str | os.PathLike) -> Path:
    """Write model + processor to `out_dir` atomically: a crash never leaves a half-written backbone there."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)

    return atomic_dir(out_dir, write)
