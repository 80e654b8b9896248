"""Typed configuration of `svla-sft` (supervised spatial tuning); `conf/sft.yaml` mirrors it.

Design: what to train (backbone, data selection), how to pack it (`PackingConfig`), how to optimise it
(`SFTOptimConfig`: per-module learning rates as in VST, arXiv 2511.05491, warmup + cosine) and the run's
bookkeeping (steps, checkpoints, resume) are separate dataclasses so tests and benchmarks can build each
alone.
Every `__post_init__` check quotes the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_backbone.config import BackboneConfig

ROUTING_AT = ("core", "prompt_end", "answer")  # where the answer-routing queries sit (`sft/routing.py`)

PACKING_MODES = ("packed", "padded")


@dataclass
class SFTDataConfig:
    """Which items of a spatial dataset (`svla-spatial-data`) to train on.

    dir: the dataset directory. split: the split to train on (train, or val for quick checks).
    skills: train only on these skills (empty = every skill of the split).
    formats: train only on items of these answer formats (`plain`, `think`, `spatialthinker`, `boxed`;
        empty = all). Evaluation prompts each item in its own format, so dropping a format leaves its items
        untaught.
    skill_weights: skill -> relative sampling weight (default 1; 0 drops the skill, 2 repeats each item
        twice per epoch, 0.5 keeps half of them).
    max_items: use at most this many items (0 = all), taken after the skill/format filter in file order.
    max_answer_tokens: drop items whose answer is longer than this many tokens (0 = keep all).
    """

    dir: str = "outputs/spatial_data"
    split: str = "train"
    skills: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    skill_weights: dict[str, float] = field(default_factory=dict)
    max_items: int = 0
    max_answer_tokens: int = 0

    def __post_init__(self) -> None:
        if not self.dir:
            raise ValueError("data.dir='' is empty: point it at a dataset written by svla-spatial-data")
        if self.max_items < 0:
            raise ValueError(f"data.max_items={self.max_items!r} must be >= 0 (0 = all)")
        if self.max_answer_tokens < 0:
            raise ValueError(f"data.max_answer_tokens={self.max_answer_tokens!r} must be >= 0 (0 = all)")
        bad = {k: v for k, v in self.skill_weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"data.skill_weights={bad!r}: weights must be >= 0")


@dataclass
class PackingConfig:
    """How items become batches.

    mode: `packed` (several items per row, attention isolated between them, M-RoPE positions restarting per
        item) or `padded` (one item per row, right padding; the baseline of `benchmarks/sft_packing.py`).
    max_length: tokens per packed row (packed) or the row cap (padded: longer items are dropped).
    rows: rows per batch (packed: packs of `max_length` tokens; padded: items).
    window: best-fit-decreasing packs items within windows of this many shuffled items (larger = tighter
        packs, less shuffling between neighbours).
    """

    mode: str = "packed"
    max_length: int = 1024
    rows: int = 4
    window: int = 1024

    def __post_init__(self) -> None:
        if self.mode not in PACKING_MODES:
            raise ValueError(f"packing.mode={self.mode!r} must be one of {PACKING_MODES}")
        if self.max_length < 64:
            raise ValueError(f"packing.max_length={self.max_length!r} must be >= 64 tokens")
        if self.rows < 1 or self.window < 1:
            raise ValueError(f"packing.rows={self.rows!r} and packing.window={self.window!r} must be >= 1")


@dataclass
class SFTOptimConfig:
    """AdamW with per-module learning rates, linear warmup then cosine decay to `min_lr_ratio` x lr.

    lr_language: language model (embeddings, decoder layers, final norm and lm_head).
    lr_vision: vision tower (patch embedding and ViT blocks). lr_merger: the vision-to-language merger MLP.
    VST (3B) used 5e-5 for the LLM and 5e-6 for the ViT; a random-init ~1M-parameter model needs far larger
    rates (see docs/sft.md for what was measured).
    """

    lr_language: float = 3e-3
    lr_vision: float = 1e-3
    lr_merger: float = 3e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 30
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    grad_accum: int = 1

    def __post_init__(self) -> None:
        for name in ("lr_language", "lr_vision", "lr_merger"):
            v = getattr(self, name)
            if not 0.0 <= v < float("inf"):
                raise ValueError(f"optim.{name}={v!r} must be finite and >= 0 (0 freezes the module)")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas={self.betas!r} must be two numbers in [0, 1)")
        if self.warmup_steps < 0 or self.grad_accum < 1 or self.grad_clip < 0:
            raise ValueError(
                f"optim.warmup_steps={self.warmup_steps!r} must be >= 0, optim.grad_accum="
                f"{self.grad_accum!r} >= 1 and optim.grad_clip={self.grad_clip!r} >= 0"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio={self.min_lr_ratio!r} must be in [0, 1]")


@dataclass
class SFTGroundingConfig:
    """The word-region alignment loss (`spatial_backbone.sft.grounding`): an object named in the question is
    bound to the image tokens its box covers (simulator ground truth), GLIP-style.

    weight: its weight beside the answer cross-entropy (0 = off: plain text SFT).
    layer: the language-model layer it supervises (hidden states after that many decoder layers; 1 <= layer <=
        the model's layer count). Below the top, the layers above can use the binding for the answer.
    dim: width of its query/key maps (a training aid kept in the checkpoint state, not in the backbone).
    attention_weight: weight of the answer-routing loss (`spatial_backbone.sft.routing`; 0 = off): the
        attention of query head k at the position that predicts the answer (`attention_at`), in decoder layer
        `attention_layer`, is taught to fall on the image tokens of the k-th object the question names. No
        extra parameters.
    attention_at: which position that is: 'core' (the token before the core answer, after any reasoning,
        `<answer>` or `\\boxed{`; for a plain answer, the prompt's last token), 'prompt_end' (always the
        prompt's last token, session 25's choice) or 'answer' (every position that writes the core answer,
        each object weighted once: for answers that spell out a place, such as a JSON point).
    attention_layer: the decoder layer (0-based; negative counts from the top, -1 = the last) it supervises.
        Layer 0 cannot work: its query sees only the prompt's last token, not the names.
    value_weight: weight of the routed value term (0 = off): the first two channels of head k's output in that
        layer regress the k-th named object's (row, col) in [0, 1] (`routing.AttentionTap.loss`).
    """

    weight: float = 0.0
    layer: int = 1
    dim: int = 64
    attention_weight: float = 0.0
    attention_layer: int = -1
    attention_at: str = "core"
    value_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < float("inf"):
            raise ValueError(f"grounding.weight={self.weight!r} must be finite and >= 0 (0 = off)")
        for name in ("attention_weight", "value_weight"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ValueError(
                    f"grounding.{name}={getattr(self, name)!r} must be finite and >= 0 (0 = off)"
                )
        if self.attention_at not in ROUTING_AT:
            raise ValueError(f"grounding.attention_at={self.attention_at!r} must be one of {ROUTING_AT}")
        if self.layer < 1 or self.dim < 1:
            raise ValueError(f"grounding.layer={self.layer!r} and grounding.dim={self.dim!r} must be >= 1")


@dataclass
class SFTConfig:
    """`svla-sft`: supervised fine-tuning of a backbone on spatial data, loss on answer tokens only.

    backbone: the starting backbone (tiny preset or checkpoint directory).
    data / packing / optim / grounding: see `SFTDataConfig`, `PackingConfig`, `SFTOptimConfig`,
        `SFTGroundingConfig`.
    output_dir: run directory: `checkpoints/step_*` (each a loadable backbone + training state),
        `checkpoints/last`, `backbone/` (the final tuned backbone), `sft_config.yaml`, `history.jsonl`.
    steps: optimizer steps. max_minutes: stop early (and save) after this wall time (0 = no limit).
    save_every / log_every: steps between checkpoints / log lines. keep_checkpoints: newest kept (0 = all).
    resume: continue from `checkpoints/last` with the same batch order (kill -9 safe).
    seed: data order and any random init. num_workers: 0 collates in the training process, 1 in one
        background worker (the batch stream is one ordered sequence, so more workers would repeat it).
    progress: tqdm bar.
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    packing: PackingConfig = field(default_factory=PackingConfig)
    optim: SFTOptimConfig = field(default_factory=SFTOptimConfig)
    grounding: SFTGroundingConfig = field(default_factory=SFTGroundingConfig)
    output_dir: str = "outputs/sft"
    steps: int = 800
    max_minutes: float = 9.5
    save_every: int = 200
    log_every: int = 10
    keep_checkpoints: int = 0
    resume: bool = False
    seed: int = 0
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps!r} must be >= 1")
        if self.save_every < 1 or self.log_every < 1:
            raise ValueError(f"save_every={self.save_every!r} and log_every={self.log_every!r} must be >= 1")
        if self.max_minutes < 0 or self.keep_checkpoints < 0:
            raise ValueError(
                f"max_minutes={self.max_minutes!r} and keep_checkpoints={self.keep_checkpoints!r} "
                "must be >= 0"
            )
        if self.num_workers not in (0, 1):
            raise ValueError(
                f"num_workers={self.num_workers!r} must be 0 (in-process) or 1 (one background worker)"
            )
        if not self.output_dir:
            raise ValueError("output_dir='' is empty")
