"""`svla-sft` library: supervised spatial tuning of a Qwen2.5-VL backbone on packed sequences (CleanRL-style).

Decisions (VST, arXiv 2511.05491: packed SFT, separate LLM / ViT learning rates, cosine, nothing frozen):
- Data: the items of a `svla-spatial-data` split, encoded once (`packing.encode_items`), packed several per
  row with attention isolated between items and M-RoPE positions restarting per item (`packing.py`). TRL's
  SFTTrainer refuses packing and padding-free batches for vision datasets, hence this loop.
- Loss: mean cross-entropy over answer tokens (answer + <|im_end|>) of the batch. The language model's final
  hidden states are computed for every token, but the output head only for positions that predict an answer
  token (`AnswerLoss`): with Qwen's 151k vocabulary that is most of the memory and time saved.
- Optimiser: AdamW with per-module learning rates (language model, vision tower, vision-language merger),
  linear warmup then cosine decay to `min_lr_ratio`; gradient clipping and accumulation. Master weights are
  float32; on CUDA accelerate runs bf16 autocast.
- accelerate owns devices and processes (`Accelerator(cpu=True)` on CPU; two CPU processes via `accelerate
  launch --multi_gpu --num_processes 2 ...`, DESIGN.md section 6); each process takes every world-th row, and
  all of them stop together when `max_minutes` runs out (`out_of_time`).
- Checkpoints every `save_every` steps, at the end and when `max_minutes` runs out: each is a loadable
  backbone directory (`build_backbone(BackboneConfig(name_or_path=<dir>))`) plus `training_state.pt`
  (optimizer, scheduler, RNG states, step), written to a temporary sibling and renamed, so a kill -9 never
  leaves a half-written one; `<output_dir>/checkpoints/last` names the newest. `resume=true` continues from it
  with the same batch order (`packing.BatchPlan`), so a resumed run ends with the weights of an
  uninterrupted one.
- Optional word-region alignment loss (`grounding.weight > 0`, `sft/grounding.py`): objects named in a
  question are bound to the image tokens they cover at one language-model layer; its small query/key head
  trains with the language model's learning rate and is kept in the training state, not in the backbone.
- A non-finite loss stops the run before the backward pass, naming the step and the last good checkpoint.
- Output: `<output_dir>/backbone`, written with `save_backbone`; `svla-train backbone.name_or_path=<it>` and
  `svla-spatial-eval backbone.name_or_path=<it>` load it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from envs.atomic import atomic_dir
from envs.hydra_utils import to_yaml
from spatial_backbone.data.io import load_split
from spatial_backbone.device import apply_runtime, resolve_runtime
from spatial_backbone.factory import build_backbone, save_backbone
from spatial_backbone.processes import loss_is_finite, out_of_time
from spatial_backbone.sft.answers import answer_forward
from spatial_backbone.sft.config import (
    PackingConfig,
    SFTConfig,
    SFTDataConfig,
    SFTGroundingConfig,
    SFTOptimConfig,
)
from spatial_backbone.sft.grounding import GroundingHead
from spatial_backbone.sft.packing import (
    BatchPlan,
    EncodedItem,
    PackedCollator,
    VisionSpec,
    encode_items,
)
from spatial_backbone.sft.routing import AttentionTap
from spatial_backbone.training_state import (
    STATE_FILE,
    NonFiniteLossError,
    last_checkpoint,
    mark_last,
    restore,
    rng_state,
)

log = logging.getLogger(__name__)
# -- model -------------------------------------------------------------------------------------------------


class AnswerLoss(torch.nn.Module):
    """Wraps a Qwen2.5-VL backbone: forward(batch) -> (sum of answer-token cross-entropies, answer tokens)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, targets, _ = answer_forward(self.backbone, batch)  # [N, V], [N]
        return F.cross_entropy(logits, targets, reduction="sum"), torch.tensor(
            targets.numel(), device=targets.device
        )


class GroundedAnswerLoss(AnswerLoss):
    """`AnswerLoss` plus the auxiliary grounding losses that are on (weight > 0): forward(batch) -> (answer
    cross-entropy sum, answer tokens, {"grounding": word-region alignment loss (`sft/grounding.py`, mean over
    the batch's mentions), "routing": answer-routing loss (`sft/routing.py`, mean over its targets)}; a loss
    is 0 on a batch without mentions)."""

    def __init__(self, backbone, cfg: SFTGroundingConfig):
        super().__init__(backbone)
        layers = backbone.config.text_config.num_hidden_layers
        if cfg.layer > layers:
            raise ValueError(f"grounding.layer={cfg.layer!r}: the language model has {layers} layers")
        self.layer = cfg.layer
        hidden = backbone.config.text_config.hidden_size
        self.grounding = GroundingHead(hidden, cfg.dim) if cfg.weight else None
        routed = cfg.attention_weight or cfg.value_weight
        self.tap = AttentionTap(backbone, cfg.attention_layer) if routed else None
        self.value = cfg.value_weight > 0

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        layer = self.layer if self.grounding is not None else None
        logits, targets, hidden = answer_forward(self.backbone, batch, layer)  # [N, V], [N], [B, S, D]
        aux = {}
        if self.grounding is not None:
            mentions = batch.get("grounding") or []
            aux["grounding"] = self.grounding(hidden, mentions) if mentions else logits.sum() * 0.0
        if self.tap is not None:
            aux |= self.tap.loss(batch.get("routing") or [], value=self.value)
        n = torch.tensor(targets.numel(), device=targets.device)
        return F.cross_entropy(logits, targets, reduction="sum"), n, aux


def param_groups(model, optim: SFTOptimConfig) -> list[dict[str, Any]]:
    """AdamW groups: vision tower, vision-language merger, language model (everything else)."""
    groups: dict[str, list[torch.nn.Parameter]] = {"vision": [], "merger": [], "language": []}
    for name, p in model.named_parameters():
        if name.startswith("model.visual.merger"):
            groups["merger"].append(p)
        elif name.startswith("model.visual"):
            groups["vision"].append(p)
        else:
            groups["language"].append(p)
    lrs = {"vision": optim.lr_vision, "merger": optim.lr_merger, "language": optim.lr_language}
    for key, lr in lrs.items():
        if lr == 0:
            for p in groups[key]:
                p.requires_grad_(False)
    return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps and lrs[k] > 0]


def warmup_cosine(optimizer, warmup: int, total: int, min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over `warmup` steps, then cosine decay from 1 to `min_ratio` at `total` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -- data --------------------------------------------------------------------------------------------------


def load_training_items(
    data: SFTDataConfig, processor, packing: PackingConfig, mentions: bool = False
) -> tuple[list[EncodedItem], list[float], dict[str, int]]:
    """Encoded items of the selected skills/formats that fit, their sampling weights, and what was dropped
    (`mentions`: with the objects each question names, for the grounding loss)."""
    items = load_split(data.dir, data.split)
    present = sorted({it["skill"] for it in items})
    unknown = [s for s in [*data.skills, *data.skill_weights] if s not in present]
    if unknown:
        raise ValueError(f"data.skills / data.skill_weights name {unknown!r}, not in {data.split}: {present}")
    fmts = sorted({it["format"] for it in items})
    if [f for f in data.formats if f not in fmts]:
        raise ValueError(f"data.formats={data.formats!r}: the split has formats {fmts}")
    items = [
        it
        for it in items
        if (not data.skills or it["skill"] in data.skills)
        and (not data.formats or it["format"] in data.formats)
        and data.skill_weights.get(it["skill"], 1.0) > 0
    ]
    if data.max_items:
        items = items[: data.max_items]
    encoded = encode_items(processor, items, data.dir, mentions=mentions)
    keep = [
        e
        for e in encoded
        if len(e) <= packing.max_length
        and (not data.max_answer_tokens or e.n_answer <= data.max_answer_tokens)
    ]
    if not keep:
        raise ValueError(f"no items left to train on after filtering {data} with {packing}")
    info = {"items": len(keep), "dropped": len(encoded) - len(keep), "tokens": sum(len(e) for e in keep)}
    if mentions:
        info["mentions"] = sum(len(e.mentions) for e in keep)
    return keep, [data.skill_weights.get(e.skill, 1.0) for e in keep], info


class PlanBatches(IterableDataset):
    """Collated batches of a `BatchPlan` from batch `start` on (this process's rows only), forever."""

    def __init__(self, items: list[EncodedItem], plan: BatchPlan, collate: PackedCollator, where: tuple):
        self.items, self.plan, self.collate = items, plan, collate
        self.rows, self.start, self.rank, self.world = where

    def __iter__(self):
        for rows in self.plan.batches(self.rows, self.start, self.rank, self.world):
            yield self.collate([[self.items[i] for i in row] for row in rows])


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    for key in ("grounding", "routing"):
        if key in batch:
            out[key] = [
                {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in m.items()}
                for m in batch[key]
            ]
    return out


# -- checkpoints -------------------------------------------------------------------------------------------


def save_checkpoint(output_dir: Path, model, processor, state: dict[str, Any]) -> Path:
    """Write `checkpoints/step_<n>` (backbone + training state) atomically, then point `last` at it."""
    name = f"step_{state['step']:07d}"

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        torch.save(state, tmp / STATE_FILE)

    final = atomic_dir(output_dir / "checkpoints" / name, write)
    mark_last(output_dir, name)
    return final


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    if keep <= 0:
        return
    ckpts = sorted((output_dir / "checkpoints").glob("step_*"))
    for old in ckpts[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# -- the loop ----------------------------------------------------------------------------------------------


def train(cfg: SFTConfig) -> dict[str, Any]:
    """Run (or resume) SFT; returns a summary (steps, losses, throughput, output backbone directory)."""
    t_start = time.perf_counter()
    out = Path(cfg.output_dir)
    bb = cfg.backbone
    rt = resolve_runtime(bb.device, bb.dtype, bb.attn_implementation, bb.num_threads)
    apply_runtime(rt)
    mp = "bf16" if rt.device.type == "cuda" and rt.dtype == torch.bfloat16 else "no"
    acc = Accelerator(
        cpu=rt.device.type == "cpu", mixed_precision=mp, gradient_accumulation_steps=cfg.optim.grad_accum
    )
    ckpt = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.warning("resume=true but no checkpoint in %s: starting from scratch", out / "checkpoints")
    # float32 master weights; on CUDA accelerate autocasts to bf16
    model, processor = build_backbone(
        replace(bb, name_or_path=str(ckpt) if ckpt else bb.name_or_path, dtype="float32")
    )
    grounded = cfg.grounding.weight > 0  # the word-region head (extra parameters, kept in the state)
    aux_weights = {
        k: w
        for k, w in (
            ("grounding", cfg.grounding.weight),
            ("routing", cfg.grounding.attention_weight),
            ("routing_value", cfg.grounding.value_weight),
        )
        if w > 0
    }
    items, weights, info = load_training_items(cfg.data, processor, cfg.packing, mentions=bool(aux_weights))
    acc.print(
        f"SFT on {info['items']} items ({info['tokens']} tokens; {info['dropped']} dropped as too long); "
        f"processes: {acc.num_processes}"
    )
    torch.manual_seed(cfg.seed)  # the grounding head's init
    module = GroundedAnswerLoss(model, cfg.grounding) if aux_weights else AnswerLoss(model)
    groups = param_groups(model, cfg.optim)
    if grounded:
        groups.append(
            {"params": list(module.grounding.parameters()), "lr": cfg.optim.lr_language, "name": "grounding"}
        )
    optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.optim.warmup_steps, cfg.steps, cfg.optim.min_lr_ratio)
    torch.manual_seed(cfg.seed)
    start = 0
    if ckpt is not None:
        start = restore(ckpt, optimizer, scheduler)
        if grounded:
            module.grounding.load_state_dict(
                torch.load(ckpt / STATE_FILE, weights_only=False)["grounding_head"]
            )
        acc.print(f"resumed from {ckpt} at step {start}")
    elif acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_config.yaml").write_text(to_yaml(cfg))
    module, optimizer = acc.prepare(module, optimizer)  # the scheduler steps once per optimizer step, here

    plan = BatchPlan([len(e) for e in items], weights, cfg.packing, cfg.seed)
    collate = PackedCollator(
        VisionSpec.from_processor(processor),
        cfg.packing.mode == "packed",
        processor.image_processor,
        routing_at=cfg.grounding.attention_at,
    )
    where = (cfg.packing.rows, start * cfg.optim.grad_accum, acc.process_index, acc.num_processes)
    loader = DataLoader(
        PlanBatches(items, plan, collate, where), batch_size=None, num_workers=cfg.num_workers
    )
    bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and acc.is_main_process), desc="sft")
    module.train()
    step, last_good = start, str(ckpt) if ckpt else None
    t0, seen = time.perf_counter(), {"tokens": 0, "slots": 0, "answer_tokens": 0, "items": 0}
    window = {"loss": 0.0, "n": 0} | dict.fromkeys(aux_weights, 0.0)
    history: list[dict[str, Any]] = []
    it = iter(loader)
    while step < cfg.steps:
        # -- forward / backward (one micro-batch) ------------------------------------------------------------
        batch = next(it)
        stats = batch.pop("stats")
        with acc.accumulate(module):
            loss_sum, n, *extra = module(to_device(batch, acc.device))
            aux = {k: v for k, v in (extra[0] if extra else {}).items() if k in aux_weights}
            ce = loss_sum / n
            loss = ce + sum(aux_weights[k] * v for k, v in aux.items())
            if not loss_is_finite(acc, loss):
                raise NonFiniteLossError(
                    f"loss is {float(loss.detach())} at step {step + 1} (on this process or another); "
                    "stopping before the backward pass. "
                    f"Last good checkpoint: {last_good or 'none yet'}. Lower the learning rates "
                    "(optim.lr_*), raise optim.warmup_steps or set optim.grad_clip."
                )
            acc.backward(loss)
            if acc.sync_gradients and cfg.optim.grad_clip > 0:
                acc.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        for k in seen:
            seen[k] += stats[k]
        window["loss"] += float(ce.detach())  # the answer cross-entropy, comparable across runs
        for k, v in aux.items():
            window[k] += float(v.detach())
        window["n"] += 1
        if not acc.sync_gradients:
            continue
        scheduler.step()
        step += 1
        bar.update(1)
        timed_out = out_of_time(acc, t_start, cfg.max_minutes)
        # -- log ---------------------------------------------------------------------------------------------
        if step % cfg.log_every == 0 or step == cfg.steps or timed_out:
            dt = time.perf_counter() - t0
            row = {
                "step": step,
                "loss": window["loss"] / window["n"],
                "tokens_per_s": seen["tokens"] / dt,
                "padding": 1 - seen["tokens"] / max(1, seen["slots"]),
                "items_per_s": seen["items"] / dt,
                **{k: window[k] / window["n"] for k in aux_weights},
                **{f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups},
            }
            window = {"loss": 0.0, "n": 0} | dict.fromkeys(aux_weights, 0.0)
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            if acc.is_main_process:
                with open(out / "history.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
        # -- checkpoint --------------------------------------------------------------------------------------
        if step % cfg.save_every == 0 or step == cfg.steps or timed_out:
            acc.wait_for_everyone()
            if acc.is_main_process:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                    "step": step,
                }
                if grounded:
                    state["grounding_head"] = acc.unwrap_model(module).grounding.state_dict()
                    state["grounding_layer"] = cfg.grounding.layer
                last_good = str(save_checkpoint(out, acc.unwrap_model(module).backbone, processor, state))
                prune_checkpoints(out, cfg.keep_checkpoints)
        if timed_out:
            acc.print(f"max_minutes={cfg.max_minutes} reached at step {step}: stopping early")
            break
    bar.close()
    acc.wait_for_everyone()
    summary = {
        "steps": step,
        "final_loss": history[-1]["loss"] if history else math.nan,
        "checkpoint": last_good,
        "seconds": time.perf_counter() - t_start,
        "train_seconds": time.perf_counter() - t0,
        "tokens_per_s": seen["tokens"] / (time.perf_counter() - t0),
        "padding": 1 - seen["tokens"] / max(1, seen["slots"]),
        "data": info,
        "history": history,
    }
    if acc.is_main_process:
        summary["backbone"] = str(
            save_backbone(acc.unwrap_model(module).backbone, processor, out / "backbone")
        )
        (out / "summary.json").write_text(
            json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1)
        )
    return summary
