"""`svla-eval` library: roll a policy checkpoint out in vector envs and report success with Wilson intervals.

- Seeds: episode i uses `seed + i`. When the checkpoint's training dataset was written by `svla-record`, its
  recorded seed range is read and an overlap is an error: evaluation seeds must be held out.
- Rollouts run in waves of `num_envs` episodes started together (AsyncVectorEnv when num_envs > 1), so one
  batched `select_action` call serves every env and the action-chunk queue stays aligned; an env that finished
  keeps stepping but its results are ignored.
- Success = `info["is_success"]` true at any step of the episode; length = steps until termination/truncation.
- Outputs in `output_dir`: `results.json` (per-task success, Wilson 95% interval, mean length, per-episode
  records, and a manifest: checkpoint + weight hash, configs, dataset, seeds, episodes, git commit, versions)
  and MP4 videos of the first `videos` episodes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from envs.hydra_utils import to_yaml
from envs.manifest import git_state, hash_files, package_versions
from envs.record import RecordEnvConfig
from vla.checkpoint import check_features, load_policy, read_features
from vla.stats import wilson_interval
from vla.video import write_mp4

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """checkpoint: a policy checkpoint directory (from svla-train).
    env: the task (`conf/env/`).
    seed: episode i uses seed + i; it must not overlap the recording seeds of the training dataset."""

    checkpoint: str = ""
    env: RecordEnvConfig = field(default_factory=RecordEnvConfig)
    episodes: int = 50
    num_envs: int = 2
    seed: int = 100_000
    videos: int = 3
    output_dir: str = "outputs/eval/default"
    n_action_steps: int = 0  # 0 = the checkpoint's value
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if not self.checkpoint:
            raise ValueError("checkpoint is empty: pass checkpoint=<dir written by svla-train>")
        if self.episodes < 1 or self.num_envs < 1:
            raise ValueError(f"episodes={self.episodes} and num_envs={self.num_envs} must be >= 1")


def _env_fn(env_cfg: RecordEnvConfig):
    return lambda: env_cfg.make()


def _recording_seeds(ckpt: Path) -> tuple[list[int], str | None]:
    """Seeds launched to record the checkpoint's training dataset, if known."""
    info_file = ckpt / "dataset.json"
    if not info_file.is_file():
        return [], None
    root = json.loads(info_file.read_text()).get("root")
    if not root:
        return [], None
    rec = Path(root) / "meta" / "svla_recording.json"
    if not rec.is_file():
        return [], root
    info = json.loads(rec.read_text())
    return [a["seed"] for a in info.get("attempts", [])] or list(info.get("seeds", [])), root


def evaluate(cfg: EvalConfig) -> dict:
    ckpt = Path(cfg.checkpoint)
    t_start = time.time()
    recorded, dataset_root = _recording_seeds(ckpt)
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    overlap = sorted(set(seeds) & set(recorded))
    if overlap:
        raise ValueError(
            f"evaluation seeds {overlap[:5]}... overlap the recording seeds of {dataset_root}; "
            f"choose seed= outside [{min(recorded)}, {max(recorded)}]"
        )
    n_envs = min(cfg.num_envs, cfg.episodes)
    fns = [_env_fn(cfg.env) for _ in range(n_envs)]
    venv = gym.vector.AsyncVectorEnv(fns, context="spawn") if n_envs > 1 else gym.vector.SyncVectorEnv(fns)
    env_feats = {
        "cameras": list(cfg.env.cameras),
        "state_dim": int(venv.single_observation_space["agent_pos"].shape[0]),
        "action_dim": int(venv.single_action_space.shape[0]),
    }
    check_features(read_features(ckpt), env_feats, f"env {cfg.env.id}")
    policy = load_policy(ckpt, device=cfg.device).eval()
    if cfg.n_action_steps:
        policy.cfg.n_action_steps = cfg.n_action_steps
    records, videos = [], []
    out = Path(cfg.output_dir)
    bar = tqdm(total=cfg.episodes, disable=not cfg.progress, desc=f"eval {cfg.env.id}")
    try:
        for wave in range(math.ceil(cfg.episodes / n_envs)):
            wave_seeds = seeds[wave * n_envs : (wave + 1) * n_envs]
            wave_seeds += [wave_seeds[-1]] * (n_envs - len(wave_seeds))  # pad the last wave; extras ignored
            records += _run_wave(policy, venv, wave_seeds, wave, cfg, videos, out)
            bar.update(min(n_envs, cfg.episodes - wave * n_envs))
            bar.set_postfix(success=f"{np.mean([r['success'] for r in records[: cfg.episodes]]):.2f}")
    finally:
        venv.close()
        bar.close()
    records = records[: cfg.episodes]
    k = sum(r["success"] for r in records)
    lo, hi = wilson_interval(k, len(records))
    weights = [p for p in ckpt.rglob("*.safetensors")]
    result = {
        "task": cfg.env.id,
        "episodes": len(records),
        "successes": k,
        "success_rate": k / len(records),
        "wilson95": [lo, hi],
        "mean_length": float(np.mean([r["length"] for r in records])),
        "records": records,
        "videos": videos,
        "manifest": {
            "checkpoint": str(ckpt.resolve()),
            "checkpoint_sha256": hash_files(weights),
            "policy_config": (ckpt / "policy.yaml").read_text(),
            "eval_config": to_yaml(cfg),
            "dataset": dataset_root,
            "seeds": seeds,
            "recording_seeds_checked": len(recorded),
            "episodes_per_task": cfg.episodes,
            "git": git_state(),
            "versions": package_versions(),
            "wall_time_s": time.time() - t_start,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result


@torch.no_grad()
def _run_wave(
    policy, venv, seeds: list[int], wave: int, cfg: EvalConfig, videos: list, out: Path
) -> list[dict]:
    n = len(seeds)
    obs, _ = venv.reset(seed=seeds)
    policy.reset()
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    length = np.zeros(n, dtype=int)
    record_video = [wave * n + i < cfg.videos for i in range(n)]
    frames = [[obs["pixels"]["front"][i]] if record_video[i] else [] for i in range(n)]
    while not done.all():
        action = policy.select_action(obs)  # [N, A]
        obs, _, term, trunc, info = venv.step(np.asarray(action, dtype=np.float32))
        is_succ = np.asarray(info.get("is_success", np.zeros(n, dtype=bool)), dtype=bool)
        for i in range(n):
            if done[i]:
                continue
            length[i] += 1
            success[i] |= bool(is_succ[i])
            if record_video[i]:
                frames[i].append(obs["pixels"]["front"][i])
            done[i] = bool(term[i] or trunc[i])
    rows = []
    for i in range(n):
        rows.append({"seed": int(seeds[i]), "success": bool(success[i]), "length": int(length[i])})
        if record_video[i]:
            path = write_mp4(
                frames[i],
                out / "videos" / f"episode_{wave * n + i:03d}_seed{seeds[i]}.mp4",
                fps=int(cfg.env.control_hz),
            )
            videos.append(str(path))
    return rows
