"""Typed configuration of the ACT baseline (`svla-train-act`); `conf/train_act.yaml` mirrors it.

The defaults are sized for the project's 2-core CPU machine; `vla.baselines.act` says what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vla.train_config import DatasetConfig, check_schedule


@dataclass
class ActPolicyConfig:
    """The ACT options we expose (the rest stay at lerobot's `ACTConfig` defaults).

    chunk_size: actions predicted per call (H, 8 like our VLA). n_action_steps: actions executed before
    re-planning (k <= H; `svla-eval n_action_steps=` overrides it). cameras: dataset / env camera names read,
    in order. vision_backbone: a torchvision ResNet, randomly initialized (nothing can be downloaded).
    dim_model / n_heads / dim_feedforward / n_encoder_layers / n_decoder_layers: the transformer.
    use_vae / latent_dim / n_vae_encoder_layers / kl_weight: ACT's CVAE objective.
    dropout: transformer dropout.
    """

    chunk_size: int = 8
    n_action_steps: int = 8
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    vision_backbone: str = "resnet18"
    dim_model: int = 256
    n_heads: int = 8
    dim_feedforward: int = 1024
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    kl_weight: float = 10.0
    dropout: float = 0.1

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ValueError(f"policy.chunk_size={self.chunk_size} must be >= 1")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"policy.n_action_steps={self.n_action_steps} must be in 1..chunk_size={self.chunk_size}"
            )
        if not self.cameras:
            raise ValueError("policy.cameras is empty: ACT needs at least one camera")
        if not self.vision_backbone.startswith("resnet"):
            raise ValueError(f"policy.vision_backbone={self.vision_backbone!r} must be a torchvision ResNet")
        if self.dim_model % self.n_heads:
            raise ValueError(f"policy.dim_model={self.dim_model} must be divisible by n_heads={self.n_heads}")
        for name in ("dim_model", "dim_feedforward", "n_encoder_layers", "n_decoder_layers", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"policy.{name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"policy.dropout={self.dropout} must be in [0, 1)")


@dataclass
class ActOptimConfig:
    """AdamW with two learning rates (ResNet backbone / the rest), linear warmup + cosine decay, clipping.

    lerobot's ACT preset is a constant 1e-5 for ~100k steps; our budgets are ~1-3k steps, hence 1e-4 with a
    schedule (the clipping norm 10 is lerobot's default)."""

    lr: float = 1e-4
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "cosine"
    grad_clip: float = 10.0

    def __post_init__(self):
        check_schedule(self.schedule)
        for name in ("lr", "lr_backbone", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name}={getattr(self, name)} must be >= 0")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps={self.warmup_steps} must be >= 0")


@dataclass
class ActTrainConfig:
    """dataset: opened like `svla-train`'s (`vla.data.open_dataset`). device: auto | cpu | cuda.
    num_threads: torch CPU threads (0 = the project rule: 1 on small machines).
    The other fields mean what they mean in `svla-train` (`TrainConfig`)."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy: ActPolicyConfig = field(default_factory=ActPolicyConfig)
    optim: ActOptimConfig = field(default_factory=ActOptimConfig)
    steps: int = 1500
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    output_dir: str = "outputs/train_act/default"
    save_every: int = 250
    log_every: int = 10
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_workers < 0 or self.num_threads < 0:
            raise ValueError(
                f"num_workers={self.num_workers} and num_threads={self.num_threads} must be >= 0"
            )
