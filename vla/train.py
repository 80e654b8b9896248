"""`svla-train` library: train a SpatialVLA policy on a LeRobot dataset with accelerate (CleanRL-style loop).

Decisions:
- accelerate owns devices and processes (CPU: `Accelerator(cpu=True)`; two CPU processes via `accelerate
  launch --multi_gpu --num_processes 2 ...`, DESIGN.md section 6); bf16 mixed precision on GPU.
- Per-module learning rates (vision tower, language model, head), AdamW, linear warmup + cosine decay or a
  constant rate (`optim.schedule`; transformers' schedulers), gradient clipping and accumulation; freeze
  vision / language / backbone, or LoRA.
- Checkpoints every `save_every` steps and at the end: policy (safetensors) + optimizer, scheduler, RNG states
  and step, written atomically; `<output_dir>/checkpoints/last` names the newest. `resume=true` continues from
  it with the same batch order (see `vla.data.batch_indices`), so a resumed run ends where an uninterrupted
  one would.
- A non-finite loss stops the run before the optimizer step, naming the step and the last good checkpoint.
- The step loop itself (`run_loop`, with `make_accelerator` and `make_loader`) is policy-agnostic: it needs
  `policy(batch) -> (loss, metrics)` and a save function, so peer baselines (`vla.baselines.act`) train with
  the same loop, checkpoints, resume and logs.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from envs.hydra_utils import to_yaml
from envs.record import OBJECTS_KEY
from spatial_backbone.device import Runtime, apply_runtime, resolve_runtime
from spatial_backbone.processes import loss_is_finite
from spatial_backbone.training_state import (
    NonFiniteLossError,
    last_checkpoint,
    mark_last,
    restore,
    rng_state,
)
from vla.augment import TrainAugment
from vla.checkpoint import check_features, init_policy_from, load_policy, read_features, save_policy
from vla.data import DatasetError, batch_indices, dataset_features, open_dataset
from vla.motion_data import MotionFrames, with_motion
from vla.normalize import select_stats
from vla.policy import SpatialVLAPolicy
from vla.processor import ACTION_KEY, PRIVILEGED_KEY, STATE_KEY
from vla.train_config import DatasetConfig, TrainConfig

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def apply_freeze(policy: SpatialVLAPolicy, freeze: str) -> None:
    bb = policy.backbone.model
    parts = {
        "vision": [bb.visual],
        "language": [bb.language_model],
        "backbone": [policy.backbone],
        "none": [],
    }[freeze]
    for module in parts:
        module.requires_grad_(False)


def train_only_lora(policy: SpatialVLAPolicy) -> None:
    """With LoRA, the backbone's own weights stay fixed; its adapters and the head train."""
    for name, p in policy.backbone.named_parameters():
        p.requires_grad_("lora_" in name)


def param_groups(policy: SpatialVLAPolicy, cfg: TrainConfig) -> list[dict]:
    groups = {"vision": [], "language": [], "head": []}
    for name, p in policy.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("backbone.model.visual"):
            groups["vision"].append(p)
        elif name.startswith("backbone."):
            groups["language"].append(p)
        else:
            groups["head"].append(p)
    lrs = {"vision": cfg.optim.lr_vision, "language": cfg.optim.lr_language, "head": cfg.optim.lr_head}
    return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]


def dataset_json(dataset: DatasetConfig) -> str:
    """`dataset.json` of a checkpoint: the training dataset with an absolute root (evaluation reads it)."""
    root = str(Path(dataset.root).resolve()) if dataset.root else None
    return json.dumps(asdict(dataset) | {"root": root})


@dataclass
class LoopConfig:
    """What the shared step loop needs from a trainer's config."""

    steps: int
    save_every: int
    log_every: int
    grad_clip: float
    progress: bool


@dataclass
class Run:
    """One training run as `run_loop` sees it. `policy(batch) -> (loss, metrics)` with `metrics["loss"]`;
    `save(unwrapped_policy, checkpoint_dir, training_state)` writes a checkpoint atomically."""

    acc: Accelerator
    policy: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    out: Path
    save: Callable[[nn.Module, Path, dict], Any]


def make_accelerator(rt: Runtime, out: Path, grad_accum: int = 1) -> Accelerator:
    """CPU or GPU (bf16 mixed precision when the runtime chose bf16), TensorBoard logs under `out`."""
    mp = "bf16" if rt.device.type == "cuda" and rt.dtype == torch.bfloat16 else "no"
    acc = Accelerator(
        cpu=rt.device.type == "cpu",
        mixed_precision=mp,
        gradient_accumulation_steps=grad_accum,
        log_with="tensorboard",
        project_dir=str(out),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    acc.print(f"processes: {acc.num_processes} ({acc.distributed_type}), device: {acc.device}")
    return acc


def make_loader(dataset, batch_size: int, seed: int, start: int, acc: Accelerator, num_workers: int):
    """Batches in the resumable order of `batch_indices` from global step `start`, this process's share."""
    sampler = batch_indices(len(dataset), batch_size, seed, start, acc.process_index, acc.num_processes)
    # spawn, not fork: a torchcodec decoder inherited from the parent breaks in forked workers (DESIGN.md 6)
    workers = {"num_workers": num_workers}
    if num_workers > 0:
        workers |= {"multiprocessing_context": "spawn", "persistent_workers": True, "prefetch_factor": 4}
    # own generator: creating the iterator draws a base seed, which must not advance the global torch RNG
    # (a resumed run restores that RNG and then creates its iterator; dropout / noise must continue unchanged)
    generator = torch.Generator().manual_seed(seed + start)
    return DataLoader(dataset, batch_sampler=sampler, generator=generator, **workers)


def run_loop(run: Run, loader, loop: LoopConfig, start: int, last_good: str | None) -> dict:
    """Optimize from step `start` to `loop.steps`: log to TensorBoard and `train_history.jsonl`, checkpoint
    every `save_every` steps and at the end (`checkpoints/step_XXXXXXX` + the `last` marker), stop on a
    non-finite loss. Returns the summary `train` returns."""
    acc, policy, optimizer, scheduler, out = run.acc, run.policy, run.optimizer, run.scheduler, run.out
    if acc.is_main_process:
        acc.init_trackers("tb")
    history = []
    bar = tqdm(
        total=loop.steps, initial=start, disable=not (loop.progress and acc.is_main_process), desc="train"
    )
    policy.train()
    step, t0, wait, compute = start, time.perf_counter(), 0.0, 0.0
    it = iter(loader)
    while step < loop.steps:
        # -- data --------------------------------------------------------------------------------------------
        tw = time.perf_counter()
        batch = next(it)
        tc = time.perf_counter()
        wait += tc - tw
        # -- loss, backward, step ----------------------------------------------------------------------------
        with acc.accumulate(policy):
            loss, metrics = policy(batch)
            if not loss_is_finite(acc, loss):
                raise NonFiniteLossError(
                    f"loss is {float(loss.detach())} at step {step + 1} (on this process or another); "
                    "stopping before the optimizer step. "
                    f"Last good checkpoint: {last_good or 'none yet'}. Lower the learning rates (optim.lr_*) "
                    "or check the "
                    f"dataset for NaN/inf values."
                )
            acc.backward(loss)
            if acc.sync_gradients and loop.grad_clip > 0:
                acc.clip_grad_norm_(policy.parameters(), loop.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        compute += time.perf_counter() - tc
        step += 1
        bar.update(1)
        # -- log and checkpoint ------------------------------------------------------------------------------
        if step % loop.log_every == 0 or step == loop.steps:
            sps = (step - start) / (time.perf_counter() - t0)
            groups = zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True)
            metrics |= {f"lr_{g.get('name', i)}": lr for i, (g, lr) in enumerate(groups)}  # lr_head, ...
            metrics["steps_per_s"] = sps
            acc.log(metrics, step=step)
            history.append({"step": step, **metrics})
            if acc.is_main_process:  # appended as it goes: a killed run keeps its curve
                with open(out / "train_history.jsonl", "a") as f:
                    f.write(json.dumps(history[-1]) + "\n")
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", sps=f"{sps:.2f}")
        if step % loop.save_every == 0 or step == loop.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                name = f"step_{step:07d}"
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                    "step": step,
                }
                run.save(acc.unwrap_model(policy), out / "checkpoints" / name, state)
                mark_last(out, name)
                last_good = str(out / "checkpoints" / name)
    bar.close()
    acc.end_training()
    return {
        "steps": step,
        "final_loss": history[-1]["loss"] if history else math.nan,
        "checkpoint": last_good,
        "data_wait_s": wait,
        "compute_s": compute,
        "wall_time_s": time.perf_counter() - t0,
        "history": history,
    }


def make_scheduler(optimizer, optim, steps: int):
    """Linear warmup over `optim.warmup_steps`, then cosine decay to 0 at `steps` or a constant rate."""
    if optim.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, optim.warmup_steps)
    return get_cosine_schedule_with_warmup(optimizer, optim.warmup_steps, steps)


def fit(
    acc: Accelerator, cfg, policy, groups: list[dict], dataset, out: Path, ckpt, write, motion=None
) -> dict:
    """What svla-train and the peer baselines share after building their policy: AdamW over `groups`, warmup +
    cosine or constant (`make_scheduler`), restoring a checkpoint's optimizer/scheduler/step (or writing the
    run's config), then `run_loop`.

    `cfg` needs steps, batch_size, seed, num_workers, save_every, log_every, progress, dataset and optim
    (warmup_steps, schedule, weight_decay, grad_clip); `write(policy, path, training_state=, extra_files=)`
    saves one checkpoint (`save_policy` or a baseline's own). `motion`: `MotionFrames` to add
    `cfg.motion_batch` image-free frames to every batch (`vla.motion_data`), or None."""
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.optim.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.steps)

    start = 0
    if ckpt is not None:
        start = restore(ckpt, optimizer, scheduler)
        acc.print(f"resumed from {ckpt} at step {start}")
    elif acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.yaml").write_text(to_yaml(cfg))

    policy, optimizer, scheduler = acc.prepare(policy, optimizer, scheduler)
    loader = make_loader(dataset, cfg.batch_size, cfg.seed, start, acc, cfg.num_workers)
    if motion is not None:
        loader = with_motion(loader, motion, cfg.motion_batch, cfg.seed, start, acc.process_index)
    loop = LoopConfig(cfg.steps, cfg.save_every, cfg.log_every, cfg.optim.grad_clip, cfg.progress)

    def save(policy, path: Path, state: dict) -> None:
        write(policy, path, training_state=state, extra_files={"dataset.json": dataset_json(cfg.dataset)})

    run = Run(acc, policy, optimizer, scheduler, out, save)
    return run_loop(run, loader, loop, start, str(ckpt) if ckpt else None)


def policy_stats(dataset) -> dict:
    """The dataset statistics a new policy normalizes with: state, action and (when recorded) privileged."""
    keys = (STATE_KEY, ACTION_KEY) + ((PRIVILEGED_KEY,) if PRIVILEGED_KEY in dataset.meta.stats else ())
    return select_stats(dataset.meta.stats, keys)


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns a summary with the final loss and the checkpoint path."""
    out = Path(cfg.output_dir)
    rt = resolve_runtime(cfg.policy.backbone.device, "auto", "auto", cfg.policy.backbone.num_threads)
    apply_runtime(rt)
    acc = make_accelerator(rt, out, cfg.optim.grad_accum)
    seed_everything(cfg.seed)
    dataset = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    if cfg.head.kwargs.get("object_attrs", 0) and OBJECTS_KEY not in dataset.meta.features:
        raise DatasetError(
            f"head.kwargs.object_attrs={cfg.head.kwargs['object_attrs']!r} needs {OBJECTS_KEY!r} (every "
            f"object's identity and image coordinates) but dataset {cfg.dataset.repo_id} has "
            f"{sorted(k for k in dataset.meta.features if k.startswith('privileged.'))}; re-record it with "
            "this version's svla-record, or set head.kwargs.object_attrs=0"
        )
    ckpt = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.warning("resume=true but no checkpoint in %s: starting from scratch", out / "checkpoints")
    if ckpt is not None:  # the same loading path as evaluation: weights, LoRA adapters, statistics
        check_features(read_features(ckpt), dataset_features(dataset, cfg.policy.cameras), "dataset")
        policy = load_policy(ckpt, device=cfg.policy.backbone.device)
    else:
        have = dataset_features(dataset, cfg.policy.cameras)["cameras"]
        if not set(cfg.policy.cameras) <= set(have):
            raise DatasetError(
                f"policy.cameras={cfg.policy.cameras} but dataset {cfg.dataset.repo_id} has cameras "
                f"{have}; set policy.cameras to a subset of them"
            )
        stats = policy_stats(dataset)
        if cfg.init_from:
            check_features(
                read_features(cfg.init_from), dataset_features(dataset, cfg.policy.cameras), "dataset"
            )
            policy = init_policy_from(cfg.init_from, cfg.policy, stats, device=cfg.policy.backbone.device)
            acc.print(f"initialized from {cfg.init_from}")
        else:
            policy = SpatialVLAPolicy(cfg.policy, stats)
    if cfg.augment.enabled:  # training only: the checkpoint does not keep it, rollouts never augment
        policy.train_transform = TrainAugment(cfg.augment)
    policy.objective = cfg.objective  # training only: a perceive checkpoint's backbone starts an act run
    apply_freeze(policy, cfg.freeze)
    if cfg.policy.lora.enabled:
        train_only_lora(policy)
    motion = MotionFrames(dataset, cfg.policy.chunk_size) if cfg.motion_batch else None
    return fit(acc, cfg, policy, param_groups(policy, cfg), dataset, out, ckpt, save_policy, motion)
