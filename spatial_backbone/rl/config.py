"""Typed configuration of `svla-rl` (GRPO with verifiable spatial rewards); `conf/rl.yaml` mirrors it.

Three parts: which items to train on (`RLDataConfig`), how GRPO samples and updates (`GRPOOptions`, the knobs
VST / SpatialThinker / DAPO name: group size, temperature, learning rate, KL coefficient or DAPO-style group
filtering), and the run (`RLConfig`: backbone, output, checkpoints, resume). Every check in `__post_init__`
quotes the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.config import SPLITS
from spatial_backbone.evaluation.metrics import SCORERS

REWARD_FAMILIES = ("vst", "spatialthinker", "ssrl")
LOSS_TYPES = ("dapo", "bnpo", "grpo", "dr_grpo")
ANCHOR_ANSWERS = ("dataset", "greedy")  # what the anchor teacher-forces (rl.anchor)
# skills with graded rewards (MRA for numbers, IoU for boxes), answered in <= 32 tokens: a tiny SFT model that
# barely perceives still gets a per-sample signal from them. Measured (docs/rl.md, session 4): +1.1 to +3.3
# points on these skills over SFT across four runs, where the earlier closed-set default gave -2.5.
DEFAULT_SKILLS = [
    "distance",
    "object_size",
    "counting",
    "video_count",
    "travel_distance",
    "box_2d",
    "grounding_box",
]


@dataclass
class RLDataConfig:
    """Which dataset items GRPO trains on.

    split: dataset split to sample prompts from. skills: skill names (empty = every skill). formats: answer
    formats to keep (`plain`, `think`, `spatialthinker`, `boxed`; empty = all). rewards: reward families to
    keep. answer_types: answer types to keep (empty = all). max_answer_tokens: drop items whose reference
    answer is longer than this many tokens (0 = the completion budget, so a correct answer is reachable).
    max_items: cap on items after filtering (0 = all), taken in a seeded shuffled order.
    """

    split: str = "train"
    skills: list[str] = field(default_factory=lambda: list(DEFAULT_SKILLS))
    formats: list[str] = field(default_factory=lambda: ["plain"])
    rewards: list[str] = field(default_factory=lambda: list(REWARD_FAMILIES))
    answer_types: list[str] = field(default_factory=list)
    max_answer_tokens: int = 0
    max_items: int = 0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"data.split={self.split!r} must be one of {SPLITS}")
        bad = [r for r in self.rewards if r not in REWARD_FAMILIES]
        if bad or not self.rewards:
            raise ValueError(f"data.rewards={self.rewards!r}: each must be one of {REWARD_FAMILIES}")
        bad = [a for a in self.answer_types if a not in SCORERS]
        if bad:
            raise ValueError(f"data.answer_types={self.answer_types!r}: {bad} not in {sorted(SCORERS)}")
        if self.max_answer_tokens < 0 or self.max_items < 0:
            raise ValueError(
                f"data.max_answer_tokens={self.max_answer_tokens!r} and data.max_items={self.max_items!r} "
                "must be >= 0"
            )


@dataclass
class GRPOOptions:
    """GRPO sampling and update (TRL's GRPOTrainer underneath; docs/rl.md).

    num_generations: group size G (completions per prompt; VST 5, SpatialThinker 8).
    prompts_per_step: prompts per optimizer step (the batch is prompts_per_step x G completions).
    temperature, top_p: sampling of the rollouts (VST: temperature 1.0).
    max_completion_length: generated tokens per completion.
    learning_rate, warmup_ratio, lr_scheduler, max_grad_norm, weight_decay: the AdamW update.
    beta: KL coefficient to the starting model (VST 1e-2; 0 = no KL and no reference model).
    dapo_filter: drop groups whose accuracy is all 1 or all 0 (DAPO dynamic sampling without refill: they
        carry no accuracy signal) from the loss. epsilon / epsilon_high: PPO clip range (DAPO clip-higher).
    loss_type: TRL's loss normalisation (`dapo`: token-level over the batch; needed by dapo_filter).
    scale_rewards: `group` (GRPO: divide advantages by the group std), `batch` or `none` (Dr. GRPO).
    anchor_coef: weight of the anchor loss (`spatial_backbone.rl.anchor`): KL(reference || policy) on the
        answer tokens of the items GRPO does NOT train: untrained skills in every format, trained skills in
        the formats GRPO does not sample (PPO-ptx style, against the drops GRPO causes on them); 0 = off.
        Needs beta > 0 (the reference model) and a non-empty data.skills or data.formats.
    anchor_items: anchor items per step; anchor_pool: items sampled once (seeded) from those items.
    anchor_answers: the answers the anchor teacher-forces: `greedy` (the starting model's own greedy
        completions, the paths the evaluation takes; in every paired run its largest drop was as small or
        smaller, docs/rl.md session 7) or `dataset` (the items' reference answers, sessions 5-6).
    anchor_margin_coef: weight of the anchor's margin term: how far each forced answer token's logit margin
        over the best other token fell below the starting model's (first order in the drift, where the KL is
        second order; `rl.anchor`); 0 = off. Either coefficient > 0 turns the anchor on. Measured at 10
        (docs/rl.md session 8): lower gain on the trained skills, no fewer drops.
    """

    num_generations: int = 4
    prompts_per_step: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.0
    lr_scheduler: str = "constant"
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    beta: float = 0.04
    dapo_filter: bool = False
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    anchor_coef: float = 0.0
    anchor_items: int = 8
    anchor_pool: int = 512
    anchor_answers: str = "greedy"
    anchor_margin_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ValueError(f"grpo.num_generations={self.num_generations!r} must be >= 2 (a group needs 2)")
        if self.prompts_per_step < 1 or self.max_completion_length < 1:
            raise ValueError(
                f"grpo.prompts_per_step={self.prompts_per_step!r} and grpo.max_completion_length="
                f"{self.max_completion_length!r} must be >= 1"
            )
        if not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(
                f"grpo.temperature={self.temperature!r} must be > 0, top_p={self.top_p!r} in (0, 1]"
            )
        if self.learning_rate <= 0 or self.beta < 0:
            raise ValueError(
                f"grpo.learning_rate={self.learning_rate!r} must be > 0 and grpo.beta={self.beta!r} >= 0"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"grpo.loss_type={self.loss_type!r} must be one of {LOSS_TYPES}")
        if self.dapo_filter and self.loss_type not in ("dapo", "bnpo"):
            raise ValueError(
                f"grpo.dapo_filter=true needs a token-level loss (loss_type dapo or bnpo), got "
                f"loss_type={self.loss_type!r}: per-sequence losses would count dropped groups as zeros"
            )
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"grpo.scale_rewards={self.scale_rewards!r} must be group, batch or none")
        if (
            self.anchor_coef < 0
            or self.anchor_margin_coef < 0
            or self.anchor_items < 1
            or self.anchor_pool < 1
        ):
            raise ValueError(
                f"grpo.anchor_coef={self.anchor_coef!r} and grpo.anchor_margin_coef="
                f"{self.anchor_margin_coef!r} must be >= 0, grpo.anchor_items={self.anchor_items!r} and "
                f"grpo.anchor_pool={self.anchor_pool!r} >= 1"
            )
        if self.anchor_answers not in ANCHOR_ANSWERS:
            raise ValueError(f"grpo.anchor_answers={self.anchor_answers!r} must be one of {ANCHOR_ANSWERS}")
        if self.anchored and self.beta == 0:
            raise ValueError(
                f"grpo.anchor_coef={self.anchor_coef!r} / anchor_margin_coef={self.anchor_margin_coef!r} "
                "need the reference model: set grpo.beta > 0 (got 0)"
            )

    @property
    def anchored(self) -> bool:
        """Whether GRPO adds the anchor loss (`rl.anchor`): either of its coefficients is > 0."""
        return self.anchor_coef > 0 or self.anchor_margin_coef > 0


@dataclass
class RLConfig:
    """`svla-rl`: GRPO on rule-checkable spatial items, from a (supervised) backbone to a tuned backbone.

    backbone: the starting backbone: a directory written by svla-sft (default) or svla-backbone, or a tiny
        preset (for tests).
    data_dir: a dataset written by svla-spatial-data. data: which items (RLDataConfig).
    grpo: sampling and update (GRPOOptions). max_steps: optimizer steps.
    output_dir: run directory: `checkpoints/checkpoint-*` (TRL checkpoints: model, optimizer, scheduler, RNG,
        trainer state), `checkpoints/last` (names the newest complete one), `backbone/` (the final tuned
        backbone, loadable by build_backbone), `history.jsonl` (one line per step: reward components, KL,
        kept groups, step time), `rl_config.yaml`.
    save_steps: checkpoint every this many steps (and at the end). resume: continue from `checkpoints/last`.
    logging_steps: log every this many steps. report_to: `none` or `tensorboard` (TRL/transformers loggers;
        history.jsonl is always written). seed: data order and sampling. progress: tqdm bar.
    """

    backbone: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(name_or_path="outputs/sft/backbone", image_size=0)
    )
    data_dir: str = "outputs/spatial_data"
    data: RLDataConfig = field(default_factory=RLDataConfig)
    grpo: GRPOOptions = field(default_factory=GRPOOptions)
    max_steps: int = 200
    output_dir: str = "outputs/rl"
    save_steps: int = 50
    resume: bool = False
    logging_steps: int = 1
    report_to: str = "none"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.save_steps < 1 or self.logging_steps < 1:
            raise ValueError(
                f"max_steps={self.max_steps!r}, save_steps={self.save_steps!r} and logging_steps="
                f"{self.logging_steps!r} must be >= 1"
            )
        if not self.output_dir:
            raise ValueError("output_dir='' is empty")
        if self.report_to not in ("none", "tensorboard"):
            raise ValueError(f"report_to={self.report_to!r} must be 'none' or 'tensorboard'")
        if self.grpo.anchored and not self.data.skills and not self.data.formats:
            raise ValueError(
                f"grpo.anchor_coef={self.grpo.anchor_coef!r} / anchor_margin_coef="
                f"{self.grpo.anchor_margin_coef!r}: the anchor holds the items GRPO does not train, but "
                "data.skills and data.formats are both empty (every item trains): list the trained skills "
                "or formats, or set both coefficients to 0"
            )
