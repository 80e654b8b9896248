"""GRPO with verifiable spatial rewards on TRL 1.16's `GRPOTrainer` (VST arXiv 2511.05491, SpatialThinker
arXiv 2511.07403, DAPO arXiv 2503.14476).

Decisions:
- TRL's GRPOTrainer does the rollouts, group-normalised advantages, clipped policy loss, optional KL to a
  reference model, checkpointing and resume. It serves Qwen2.5-VL correctly: it builds `mm_token_type_ids`
  with the processor for the prompt and extends them with zeros over the completion, both for generation and
  for the log-prob forward passes, so M-RoPE positions are 3D (checked in tests/test_rl.py).
- Dataset rows: `images` (decoded images, several for multi-view / video items), `prompt` (conversation: the
  item's system prompt if any, then the question; TRL inserts the image placeholders), and the extra columns
  the rewards read (`reward`, `answer_type`, `format`, `gt`, `answer`, `skill`).
- One reward callable (`SpatialReward`) wraps the pure reward families (`spatial_backbone.rewards`): each
  completion is scored by its item's family; it returns `overall` and logs every component's mean per step
  (`vst/accuracy`, `spatialthinker/spatial`, ... through TRL's `log_metric`) plus `accuracy` over all items.
- DAPO-style filtering (TRL has no group filter): `SpatialGRPOTrainer` overrides
  `_generate_and_score_completions`; after scoring, groups whose accuracy is all 1 or all 0 get their
  completion mask zeroed and `num_items_in_batch` recomputed, so with the token-level `dapo` loss they are
  exactly absent from the loss. DAPO also refills the batch by sampling more prompts; we do not (the batch
  shrinks; `dapo/kept_groups` logs the kept fraction).
- Checkpoints are TRL's (`save_steps`, `<output_dir>/checkpoints/checkpoint-N`); a callback writes
  `checkpoints/last` atomically once a checkpoint is complete, and `resume=true` continues from the one it
  names, so a run killed mid-save never resumes from a half-written directory. A non-finite loss stops the
  run, naming the last good checkpoint. `history.jsonl` gets one line per logged step.
- The final policy is written with `save_backbone` to `<output_dir>/backbone`, loadable by `build_backbone`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOConfig, GRPOTrainer

from envs.hydra_utils import to_yaml
from spatial_backbone.data.io import load_split, to_hf_dataset
from spatial_backbone.factory import build_backbone, save_backbone
from spatial_backbone.rewards import get_reward
from spatial_backbone.rl.anchor import AnchorItems, anchor_losses, trained_by_grpo
from spatial_backbone.rl.config import RLConfig, RLDataConfig

log = logging.getLogger(__name__)
REWARD_COLUMNS = ("reward", "answer_type", "format", "gt", "answer", "skill")


class NonFiniteLossError(FloatingPointError):
    pass


# -- data
# --------------------------------------------------------------------------------------------------------
def select_items(items: list[dict[str, Any]], cfg: RLDataConfig, tokenizer, max_tokens: int) -> list[int]:
    """Indices of the items GRPO trains on (filters of `RLDataConfig`; seeded shuffle is left to the
    trainer's sampler)."""
    present = sorted({it["skill"] for it in items})
    bad = [s for s in cfg.skills if s not in present]
    if bad:
        raise KeyError(f"data.skills {bad!r} have no items in split {cfg.split!r}; skills present: {present}")
    limit = cfg.max_answer_tokens or max_tokens

    def keep(it: dict[str, Any]) -> bool:
        return (
            trained_by_grpo(it, cfg.skills, cfg.formats)
            and it["reward"] in cfg.rewards
            and (not cfg.answer_types or it["answer_type"] in cfg.answer_types)
            and len(tokenizer(it["answer"])["input_ids"]) + 1 <= limit  # + end of turn
        )

    idx = [i for i, it in enumerate(items) if keep(it)]
    if not idx:
        raise ValueError(
            f"no {cfg.split!r} items pass the filters (skills={cfg.skills}, formats={cfg.formats}, "
            f"rewards={cfg.rewards}, answer_types={cfg.answer_types}, answer <= {limit} tokens)"
        )
    if cfg.max_items:
        idx = sorted(random.Random(0).sample(idx, min(cfg.max_items, len(idx))))
    return idx


def prompt_messages(system: str | None, question: str) -> list[dict[str, str]]:
    """The conversation of an item (TRL inserts the image placeholders before the user text)."""
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]


def build_dataset(data_dir: str | Path, cfg: RLDataConfig, tokenizer, max_tokens: int):
    """The HF dataset GRPOTrainer reads: `images`, `prompt` and the reward columns."""
    items = load_split(data_dir, cfg.split, decode=False)
    idx = select_items(items, cfg, tokenizer, max_tokens)
    ds = to_hf_dataset(data_dir, cfg.split, with_images=True).select(idx)
    ds = ds.map(lambda r: {"prompt": prompt_messages(r["system"], r["question"])})
    return ds.select_columns(["images", "prompt", *REWARD_COLUMNS])


# -- rewards
# -----------------------------------------------------------------------------------------------------
class SpatialReward:
    """TRL reward callable: each completion scored by its item's reward family; returns `overall`, logs the
    components. Keeps the last batch's accuracies for the DAPO filter."""

    __name__ = "spatial"

    def __init__(self) -> None:
        self.last_accuracy: list[float] = []

    def __call__(self, prompts, completions, log_metric=None, **columns) -> list[float]:
        items = [
            {k: columns[k][i] for k in REWARD_COLUMNS} | {"completion": c} for i, c in enumerate(completions)
        ]
        results: list[dict[str, float]] = [{}] * len(items)
        by_family: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            by_family.setdefault(it["reward"], []).append(i)
        for family, idx in by_family.items():
            scored = get_reward(family).score([items[i] for i in idx])
            for i, res in zip(idx, scored, strict=True):
                results[i] = res
            if log_metric is not None:
                for key in sorted({k for r in scored for k in r}):
                    vals = [r[key] for r in scored if key in r]
                    log_metric(f"{family}/{key}", sum(vals) / len(vals))
        self.last_accuracy = [r.get("accuracy", 0.0) for r in results]
        if log_metric is not None:
            log_metric("accuracy", sum(self.last_accuracy) / max(1, len(results)))
        return [r["overall"] for r in results]


def drop_uninformative_groups(batch: dict[str, Any], accuracy: list[float], group: int) -> float:
    """DAPO dynamic-sampling filter, in place on a TRL generation batch: zero the completion mask of every
    group (`group` consecutive completions of one prompt) whose accuracy is all >= 1 or all <= 0, and recount
    `num_items_in_batch` (the token-level loss's denominator). Returns the fraction of groups kept."""
    mask = batch["completion_mask"]  # [B, T]
    acc = torch.tensor(accuracy, device=mask.device).view(-1, group)  # [B / G, G]
    informative = ~((acc >= 1.0).all(1) | (acc <= 0.0).all(1))  # [B / G]
    batch["completion_mask"] = mask * informative.repeat_interleave(group).unsqueeze(1).to(mask.dtype)
    counted = (
        batch["completion_mask"] * batch["tool_mask"] if "tool_mask" in batch else batch["completion_mask"]
    )
    batch["num_items_in_batch"] = counted.sum()
    return informative.float().mean().item()


class SpatialGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + DAPO-style dropping of groups whose accuracy is all 1 or all 0 (see the module
    docstring)."""

    def __init__(
        self,
        *args,
        spatial_reward: SpatialReward,
        dapo_filter: bool,
        anchor: AnchorItems | None = None,
        anchor_coef: float = 0.0,
        anchor_margin_coef: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.spatial_reward, self.dapo_filter = spatial_reward, dapo_filter
        self.anchor, self.anchor_coef, self.anchor_margin_coef = anchor, anchor_coef, anchor_margin_coef

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """GRPO's loss, plus the anchor on what GRPO does not train (`rl.anchor`): `anchor_coef` x its KL and
        `anchor_margin_coef` x its margin drop."""
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.anchor is None or not model.training:
            return loss
        batch = self.anchor.batch(self.state.global_step)
        batch = {k: v.to(self.accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        unwrap = self.accelerator.unwrap_model
        kl, drop = anchor_losses(unwrap(model), unwrap(self.ref_model), batch)
        self._metrics["train"]["anchor/kl"].append(float(kl.detach()))
        self._metrics["train"]["anchor/margin_drop"].append(float(drop.detach()))
        return loss + self.anchor_coef * kl + self.anchor_margin_coef * drop

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if self.dapo_filter and self.model.training:
            if self.accelerator.num_processes != 1:
                raise NotImplementedError("dapo_filter runs in one process (set grpo.dapo_filter=false)")
            # TRL repeats each prompt num_generations times in a row (RepeatSampler), so groups are contiguous
            kept = drop_uninformative_groups(out, self.spatial_reward.last_accuracy, self.num_generations)
            self._metrics["train"]["dapo/kept_groups"].append(kept)
        return out


# -- callbacks: history, compact progress, checkpoints/last, non-finite stop
# ---------------------------------------------
def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunCallback(TrainerCallback):
    """history.jsonl + tqdm postfix per logged step; `checkpoints/last` after each complete save; stop on a
    non-finite loss naming the last good checkpoint."""

    SHOWN = ("reward", "accuracy", "kl", "dapo/kept_groups")

    def __init__(self, out_dir: Path, progress: bool) -> None:
        self.out_dir, self.progress, self.bar = out_dir, progress, None
        self.history = out_dir / "history.jsonl"
        self.t0 = time.perf_counter()

    def last_checkpoint(self) -> str:
        last = self.out_dir / "checkpoints" / "last"
        return last.read_text().strip() if last.is_file() else "none (no checkpoint yet)"

    def on_train_begin(self, args, state, control, **kw):
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="grpo", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = dict(logs or {})
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"non-finite loss {loss} at step {state.global_step}; last good checkpoint: "
                f"{self.last_checkpoint()}"
            )
        row = {"step": state.global_step, "wall_s": round(time.perf_counter() - self.t0, 2)} | logs
        with open(self.history, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
        if self.bar is not None:
            self.bar.set_postfix({k: f"{logs[k]:.3f}" for k in self.SHOWN if k in logs}, refresh=False)

    def on_save(self, args, state, control, **kw):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():  # TRL has finished writing it
            _atomic_write(Path(args.output_dir) / "last", ckpt.name + "\n")

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()


def resume_checkpoint(out_dir: Path) -> str | None:
    """The checkpoint named by `checkpoints/last`, or None (fresh start)."""
    last = out_dir / "checkpoints" / "last"
    if not last.is_file():
        return None
    path = out_dir / "checkpoints" / last.read_text().strip()
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"{last} names {path}, which has no trainer_state.json: the checkpoint is gone"
        )
    return str(path)


def trim_history(path: Path, step: int) -> None:
    """Keep the history lines up to `step` (the resumed checkpoint; 0 = a fresh run, empty history)."""
    if not path.exists():
        return
    rows = [line for line in open(path) if step and json.loads(line)["step"] <= step]
    _atomic_write(path, "".join(rows))


# -- the run
# -----------------------------------------------------------------------------------------------------
def grpo_args(cfg: RLConfig, use_cpu: bool) -> GRPOConfig:
    g = cfg.grpo
    return GRPOConfig(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"),
        use_cpu=use_cpu,
        bf16=False,
        per_device_train_batch_size=g.prompts_per_step * g.num_generations,
        gradient_accumulation_steps=1,
        num_generations=g.num_generations,
        temperature=g.temperature,
        top_p=g.top_p,
        max_completion_length=g.max_completion_length,
        learning_rate=g.learning_rate,
        lr_scheduler_type=g.lr_scheduler,
        warmup_steps=round(g.warmup_ratio * cfg.max_steps),
        max_grad_norm=g.max_grad_norm,
        weight_decay=g.weight_decay,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        max_steps=cfg.max_steps,
        save_steps=cfg.save_steps,
        save_strategy="steps",
        logging_steps=cfg.logging_steps,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def build_trainer(cfg: RLConfig) -> tuple[SpatialGRPOTrainer, Any, Path]:
    """(trainer, processor, output dir) for a run; the starting backbone is loaded with `build_backbone`."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.report_to == "tensorboard":
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    model, processor = build_backbone(cfg.backbone)
    if not Path(str(model.config._name_or_path)).is_dir():  # a preset: the KL reference reloads from disk
        start = save_backbone(model, processor, out / "start_backbone")
        model.config._name_or_path = str(start)
    processor.tokenizer.padding_side = "left"
    dataset = build_dataset(cfg.data_dir, cfg.data, processor.tokenizer, cfg.grpo.max_completion_length)
    log.info("GRPO on %d items of %s/%s", len(dataset), cfg.data_dir, cfg.data.split)
    reward = SpatialReward()
    anchor = None
    if cfg.grpo.anchored:
        g = cfg.grpo
        anchor = AnchorItems(
            processor,
            cfg.data_dir,
            cfg.data.split,
            cfg.data.skills,
            g.anchor_items,
            g.anchor_pool,
            cfg.seed,
            cfg.data.formats,
            answers=g.anchor_answers,
            model=model,
        )
        log.info(
            "anchor: %d items of %d skills, all formats but GRPO's, %s answers",
            len(anchor.items),
            len(anchor.skills),
            g.anchor_answers,
        )
    trainer = SpatialGRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=grpo_args(cfg, use_cpu=model.device.type == "cpu"),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[RunCallback(out, cfg.progress)],
        spatial_reward=reward,
        dapo_filter=cfg.grpo.dapo_filter,
        anchor=anchor,
        anchor_coef=cfg.grpo.anchor_coef,
        anchor_margin_coef=cfg.grpo.anchor_margin_coef,
    )
    for cb in (ProgressCallback, PrinterCallback):  # RunCallback shows a compact bar instead
        trainer.remove_callback(cb)
    return trainer, processor, out


def train_rl(cfg: RLConfig) -> dict[str, Any]:
    """Run GRPO (resuming if asked) and write the tuned backbone; returns a summary dict."""
    torch.manual_seed(cfg.seed)
    trainer, processor, out = build_trainer(cfg)
    ckpt = resume_checkpoint(out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.info("resume=true but %s has no checkpoints/last: starting fresh", out)
    trim_history(out / "history.jsonl", int(Path(ckpt).name.split("-")[-1]) if ckpt else 0)
    _atomic_write(out / "rl_config.yaml", to_yaml(cfg))
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.perf_counter() - t0
    backbone = save_backbone(trainer.model, processor, out / "backbone")
    history = [r for r in map(json.loads, open(out / "history.jsonl")) if "reward" in r]
    summary = {
        "backbone": str(backbone),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "resumed_from": ckpt,
        "items": len(trainer.train_dataset),
        "first": {k: history[0].get(k) for k in ("reward", "accuracy")} if history else {},
        "last": {k: history[-1].get(k) for k in ("reward", "accuracy")} if history else {},
    }
    _atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    return summary
