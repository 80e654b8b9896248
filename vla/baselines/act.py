"""ACT peer baseline: LeRobot's own ACT trained on our datasets with our loop, evaluated by `svla-eval`.

    from vla.baselines.act import ActTrainConfig, train_act
    cfg = ActTrainConfig(dataset=DatasetConfig(repo_id=..., root=...), steps=..., output_dir=...)
    summary = train_act(cfg)
    evaluate(EvalConfig(checkpoint=summary["checkpoint"], env=..., episodes=50))

Decisions:
- The model and its normalization are lerobot 0.6.1's (`ACTPolicy`, `ACTConfig`,
  `make_pre_post_processors`), ResNet without pretrained weights (nothing can be downloaded);
  `vla.baselines.act_policy` wraps it behind our policy interface with ONE observation -> input function
  shared by training and rollouts.
- ACT reads images and proprioception only: lerobot's ACT has no language input, so the instruction is
  ignored. On Lift (one object) that costs nothing; on multi-task data it can only solve what the scene alone
  determines, which is part of what the comparison with the VLA shows.
- Everything around the model is `svla-train`'s: the dataset opened by `vla.data.open_dataset` (action chunks
  through `delta_timestamps`), the resumable batch order, accelerate, AdamW + warmup/cosine + clipping, the
  step loop `vla.train.run_loop` (train_history.jsonl, TensorBoard, NaN stop, atomic
  `checkpoints/step_XXXXXXX` with the `last` marker, `resume=true` restoring optimizer, scheduler and RNG
  states). So the only difference between the two runs of a comparison is the policy.
- Defaults sized for the 2-core CPU (one torch thread, batch 16, 128 px frames from both cameras), measured
  fwd+bwd+AdamW per step on synthetic batches: lerobot's default ACT (dim_model 512, feed-forward 3200, 51.6M
  parameters with ResNet18) 2.3 s; dim_model 256 / feed-forward 1024 (18.7M) 1.16 s, which we chose; 2 instead
  of 4 encoder layers saved only 7% more. The ResNet18 is the cost that remains (~1.0 s of the step for 32
  images of 128 px; ACT requires a ResNet and ResNet18 is the smallest), and data loading adds ~0.08 s per
  batch (in the real loop on Lift, quiet machine: 0.83 steps/s, data wait 5%). chunk_size = n_action_steps =
  8 like our VLA. Learning rate 1e-4 with warmup + cosine instead of lerobot's constant 1e-5 (which assumes
  ~100k steps). Lift, 1500 steps at batch 16: 90% [79, 96] over 50 held-out episodes (README, ACT baseline).
"""

from __future__ import annotations

import logging
from pathlib import Path

from spatial_backbone.device import apply_runtime, resolve_runtime
from spatial_backbone.training_state import last_checkpoint
from vla.baselines.act_config import ActOptimConfig, ActPolicyConfig, ActTrainConfig
from vla.baselines.act_policy import (
    ActPolicy,
    act_features,
    dataset_stats,
    load_act_policy,
    save_act_policy,
)
from vla.checkpoint import check_features, load_policy, read_features
from vla.data import open_dataset
from vla.train import fit, make_accelerator, seed_everything

__all__ = ["ActOptimConfig", "ActPolicy", "ActPolicyConfig", "ActTrainConfig", "load_act_policy", "train_act"]

log = logging.getLogger(__name__)


def param_groups(policy: ActPolicy, optim: ActOptimConfig) -> list[dict]:
    """The ResNet backbone and the rest, each with its learning rate (lerobot's `get_optim_params` split)."""
    groups = {"backbone": [], "rest": []}
    for name, p in policy.model.named_parameters():
        if p.requires_grad:
            groups["backbone" if name.startswith("model.backbone") else "rest"].append(p)
    lrs = {"backbone": optim.lr_backbone, "rest": optim.lr}
    return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]


def train_act(cfg: ActTrainConfig) -> dict:
    """Run (or resume) ACT training. Returns {"steps", "final_loss", "checkpoint", "history", "wall_time_s",
    "data_wait_s", "compute_s"}; "checkpoint" is the last checkpoint's directory (`svla-eval` loads it)."""
    out = Path(cfg.output_dir)
    rt = resolve_runtime(cfg.device, "float32", "auto", cfg.num_threads)
    apply_runtime(rt)
    acc = make_accelerator(rt, out)
    seed_everything(cfg.seed)
    dataset = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    feats = act_features(dataset, cfg.policy)
    ckpt = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.warning("resume=true but no checkpoint in %s: starting from scratch", out / "checkpoints")
    if ckpt is not None:  # the same loading path as evaluation
        check_features(read_features(ckpt), feats, "dataset")
        policy = load_policy(ckpt, device=rt.device.type)
        if not isinstance(policy, ActPolicy):
            raise TypeError(f"{ckpt} is not an ACT checkpoint (got {type(policy).__name__}); use svla-train")
    else:
        policy = ActPolicy.create(cfg.policy, feats, dataset_stats(dataset, cfg.policy), rt.device.type)
    return fit(acc, cfg, policy, param_groups(policy, cfg.optim), dataset, out, ckpt, save_act_policy)
