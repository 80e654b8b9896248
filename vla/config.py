"""Typed policy configuration; `conf/head/*.yaml` and `conf/train.yaml` mirror it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spatial_backbone.config import BackboneConfig


@dataclass
class HeadConfig:
    """name: `flow_matching` | `l1_chunk` | `action_tokens`.
    hidden_layers: which backbone hidden states the head reads (`all`, `last`, `last_k:N`, or `1,2`).
    kwargs: head-specific sizes (see each head's constructor)."""

    name: str = "l1_chunk"
    hidden_layers: str = "all"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        from vla.heads import HEADS
        from vla.heads.base import check_head_kwargs

        if self.name not in HEADS:
            raise ValueError(f"head.name={self.name!r} is not a registered head; valid: {sorted(HEADS)}")
        check_head_kwargs(self.name, self.kwargs)


@dataclass
class LoraConfig:
    """LoRA adapters (PEFT) on the language model's projections. Part of the policy: a checkpoint re-applies
    them on load (base weights in backbone/, adapter weights in head.safetensors)."""

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class PolicyConfig:
    """chunk_size: actions predicted per call (H).
    n_action_steps: actions executed before re-planning (k <= H). Default 4 = re-plan twice per chunk: on Lift
        (500 demos, l1_chunk) k = 4 gave 88-90% where k = 8 gave 70-78% and k = 1 58-82% (README, session 4).
    cameras: camera names read from observations, in order.
    prompt: how the instruction is put to the model.
    instruction_first: put the prompt before the camera images instead of after them. The language model is
        causal, so only then can the image tokens attend to the instruction: their hidden states (which the
        head's pointers and keypoints read) become instruction-conditioned visual features, the attention
        analogue of FiLM (DESIGN.md section 6, learning probe).
    film: instruction-conditioned FiLM on the vision tower (`vla.film`, RT-1 style): the instruction scales
        and shifts the visual features channel by channel before the language model sees them."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    chunk_size: int = 8
    n_action_steps: int = 4
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    prompt: str = "What action should the robot take to {instruction}?"
    instruction_first: bool = False
    film: bool = False

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size={self.chunk_size} must be >= 1")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps={self.n_action_steps} must be in 1..chunk_size={self.chunk_size}"
            )
        if not self.cameras:
            raise ValueError("cameras is empty: the policy needs at least one camera")
        if "{instruction}" not in self.prompt:
            raise ValueError(f"prompt={self.prompt!r} must contain '{{instruction}}'")
