"""`svla-eval` library: roll a policy checkpoint out in vector envs and report success with Wilson intervals.

- Seeds: episode i uses `seed + i`. When the checkpoint's training dataset was written by `svla-record`, its
  recorded seed range is read and an overlap is an error: evaluation seeds must be held out.
- Rollouts run in waves of `num_envs` episodes started together (AsyncVectorEnv when num_envs > 1), so one
  batched `select_action` call serves every env and the action-chunk queue stays aligned; an env that finished
  keeps stepping but its results are ignored.
- Success = `info["is_success"]` true at any step of the episode; length = steps until termination/truncation.
- Outputs in `output_dir`: `results.json` (per-task success, Wilson 95% interval, mean length, per-episode
  records, and a manifest: checkpoint + weight hash, configs, dataset, seeds, episodes, git commit, versions)
  and MP4 videos of the first `videos` episodes (of the env's first camera).
- Multi-task suites (`env=metaworld_mt10`: an env id the env family expands into tasks, see
  `RecordEnvConfig.task_configs`): the same per-task rollout runs for every task with the same seeds
  (`episodes` per task; 10 is the MetaWorld protocol), then `summarize_suite` adds per-bucket success with
  Wilson intervals and the bucket `average` (SmolVLA's "Average" = the mean of the bucket means). Videos go
  to `videos/<task>/`. The single-task output is unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from envs.hydra_utils import to_yaml
from envs.manifest import git_state, hash_files, package_versions
from envs.record import RecordEnvConfig
from envs.tasks.base import PRIVILEGED_POINTS
from vla.checkpoint import check_features, load_policy, read_features
from vla.stats import wilson_interval
from vla.video import write_mp4

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """checkpoint: a policy checkpoint directory (from svla-train).
    env: the task (`conf/env/`), or a suite of tasks (e.g. `metaworld_mt10`: every task is evaluated).
    episodes: episodes per task.
    seed: episode i uses seed + i (of every task); it must not overlap the recording seeds of the training
        dataset."""

    checkpoint: str = ""
    env: RecordEnvConfig = field(default_factory=RecordEnvConfig)
    episodes: int = 50
    num_envs: int = 2
    seed: int = 100_000
    videos: int = 3
    output_dir: str = "outputs/eval/default"
    n_action_steps: int = 0  # 0 = the checkpoint's value
    # diagnostic: feed the head the true target/goal positions (env privileged state) in place of its own
    # grounding predictions -- what the policy would do if it always found the named object (our suite only)
    oracle_grounding: bool = False
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
    """Evaluate `cfg.checkpoint` on `cfg.env`: one task, or every task of a suite (e.g. `metaworld/mt10`).

    Both write `results.json` in `cfg.output_dir` and return the same dict. One task: the per-task keys at the
    top level (`task`, `episodes`, `successes`, `success_rate`, `wilson95`, `mean_length`, `records`,
    `videos`) plus `manifest`. A suite: `suite`, `tasks` ({task id: the per-task dict}), `buckets` and
    `average` (see `summarize_suite`), the pooled `episodes` / `successes` / `success_rate` / `wilson95`,
    `videos`, and `manifest`. The policy is loaded once; tasks run one after the other.
    """
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
    tasks = cfg.env.task_configs()  # [cfg.env] for one task
    suite = cfg.env.is_suite
    out = Path(cfg.output_dir)
    policy = None
    per_task: dict[str, dict] = {}
    for env_cfg in tasks:
        video_dir = out / "videos" / env_cfg.id.split("/")[-1] if suite else out / "videos"
        venv = _open_venv(env_cfg, min(cfg.num_envs, cfg.episodes))
        try:
            env_feats = env_features(env_cfg, venv.single_observation_space, venv.single_action_space)
            check_features(read_features(ckpt), env_feats, f"env {env_cfg.id}")
            if policy is None:
                policy = rollout_policy(ckpt, cfg.device, cfg.n_action_steps, cfg.oracle_grounding)
            per_task[env_cfg.id] = _evaluate_task(policy, venv, env_cfg, seeds, cfg, video_dir)
        finally:
            venv.close()
    if suite:
        result = {"suite": cfg.env.id, **summarize_suite(per_task, cfg.env.task_bucket)}
        result["videos"] = [v for r in per_task.values() for v in r["videos"]]
    else:
        result = per_task[cfg.env.id]
    weights = [p for p in ckpt.rglob("*.safetensors")]
    result["manifest"] = {
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_sha256": hash_files(weights),
        "policy_config": (ckpt / "policy.yaml").read_text(),
        "eval_config": to_yaml(cfg),
        "dataset": dataset_root,
        "seeds": seeds,
        "recording_seeds_checked": len(recorded),
        "episodes_per_task": cfg.episodes,
        "tasks": list(per_task),
        "git": git_state(),
        "versions": package_versions(),
        "wall_time_s": time.time() - t_start,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    return result


def env_features(env_cfg: RecordEnvConfig, observation_space, action_space) -> dict:
    """The features a checkpoint must match (`check_features`): cameras, state and action dimensions."""
    return {
        "cameras": list(env_cfg.cameras),
        "state_dim": int(observation_space["agent_pos"].shape[0]),
        "action_dim": int(action_space.shape[0]),
    }


def rollout_policy(ckpt: Path, device: str, n_action_steps: int = 0, oracle_grounding: bool = False):
    """A checkpoint loaded for rollouts (eval mode), with the re-planning interval (0 = the checkpoint's) and
    the oracle-grounding diagnostic set as asked."""
    policy = load_policy(ckpt, device=device).eval()
    if n_action_steps:
        policy.cfg.n_action_steps = n_action_steps
    if oracle_grounding:
        if not hasattr(policy, "oracle_grounding"):
            raise ValueError(f"oracle_grounding=true: {ckpt} is not a VLA policy with grounding")
        policy.oracle_grounding = True
    return policy


def _open_venv(env_cfg: RecordEnvConfig, n_envs: int) -> gym.vector.VectorEnv:
    fns = [_env_fn(env_cfg) for _ in range(n_envs)]
    return gym.vector.AsyncVectorEnv(fns, context="spawn") if n_envs > 1 else gym.vector.SyncVectorEnv(fns)


def _evaluate_task(
    policy, venv, env_cfg: RecordEnvConfig, seeds: list[int], cfg: EvalConfig, video_dir: Path
) -> dict:
    """Roll `policy` out on one task's `venv` for every seed; the per-task result dict."""
    n_envs, n_episodes = venv.num_envs, len(seeds)
    records, videos = [], []
    bar = tqdm(total=n_episodes, disable=not cfg.progress, desc=f"eval {env_cfg.id}")
    try:
        for wave in range(math.ceil(n_episodes / n_envs)):
            wave_seeds = seeds[wave * n_envs : (wave + 1) * n_envs]
            wave_seeds += [wave_seeds[-1]] * (n_envs - len(wave_seeds))  # pad the last wave; extras ignored
            records += _run_wave(
                policy, venv, wave_seeds, wave, env_cfg, cfg.videos, videos, video_dir, cfg.oracle_grounding
            )
            bar.update(min(n_envs, n_episodes - wave * n_envs))
            bar.set_postfix(success=f"{np.mean([r['success'] for r in records[:n_episodes]]):.2f}")
    finally:
        bar.close()
    records = records[:n_episodes]
    k = sum(r["success"] for r in records)
    lo, hi = wilson_interval(k, len(records))
    return {
        "task": env_cfg.id,
        "episodes": len(records),
        "successes": k,
        "success_rate": k / len(records),
        "wilson95": [lo, hi],
        "mean_length": float(np.mean([r["length"] for r in records])),
        "records": records,
        "videos": videos,
        **({"diagnostics": rollout_diagnostics(records)} if records and "first_touch" in records[0] else {}),
    }


def rollout_diagnostics(records: list[dict]) -> dict:
    """Why episodes failed, from the suite's per-episode roles: the fraction of all episodes and of the failed
    ones whose first touched object was the instruction's target / its reference / another object / nothing,
    and whose gripper ended nearest the target or another object. A high `other` share among failures means
    the policy acts well but on the wrong object (grounding); `target` means it found the object and fumbled
    the motion. `success_by_relation`: success per way the instruction named the target ("leftmost",
    "closest_to_anchor", "color", ...)."""
    failed = [r for r in records if not r["success"]]
    out: dict = {"failures": len(failed)}
    for key, roles in (
        ("first_touch", ("target", "reference", "other", "none")),
        ("final_nearest", ("target", "reference", "other")),
    ):
        for name, rows in (("all", records), ("failed", failed)):
            out[f"{key}_{name}"] = {r: sum(x[key] == r for x in rows) / max(1, len(rows)) for r in roles}
    by_rel: dict[str, list[int]] = {}
    for r in records:
        k = by_rel.setdefault(r.get("relation", ""), [0, 0])
        k[0] += r["success"]
        k[1] += 1
    out["success_by_relation"] = {
        rel: {"successes": k, "episodes": n, "success_rate": k / n} for rel, (k, n) in sorted(by_rel.items())
    }
    if "grounding_cm" in records[0]:
        out["grounding_cm"] = grounding_summary(records)
    return out


def grounding_summary(records: list[dict]) -> dict:
    """Mean cm between the policy's own 3D target/goal and the true ones, per point, at the first chunk
    (`first`: where perception stands before the arm moves) and over each episode's chunks (`mean`), over
    all / successful / failed episodes. Perception at rollout, next to what it costs: the motion needs ~1 cm
    (session 16: 2 cm of bias took PickPlace from 100% to 30%)."""
    out: dict = {}
    for point in records[0]["grounding_cm"]:
        out[point] = {}
        for name, keep in (("all", None), ("success", True), ("failed", False)):
            rows = [r["grounding_cm"][point] for r in records if keep is None or r["success"] == keep]
            for k in ("first", "mean"):
                out[point][f"{k}_{name}"] = float(np.mean([x[k] for x in rows])) if rows else None
    return out


def summarize_suite(per_task: dict[str, dict], bucket_of: Callable[[str], str]) -> dict:
    """Per-bucket and overall scores of a suite from per-task results (`episodes`, `successes` each).

    A bucket pools its tasks' episodes: `success_rate` = successes / episodes (with equal episodes per task,
    as the protocol runs, this is the mean of the per-task rates) and `wilson95` is the Wilson 95% interval
    of that pooled proportion. `average` = the unweighted mean of the bucket success rates: SmolVLA's
    "Average" column for MetaWorld (the mean of its four bucket means, 57.3 = mean(82.5, 41.8, 45.0, 60.0)),
    not the mean over tasks; that one is `task_mean`. The pooled `success_rate` / `wilson95` over all episodes
    are reported too.
    """
    buckets: dict[str, dict] = {}
    for task, r in per_task.items():
        b = buckets.setdefault(bucket_of(task), {"tasks": [], "episodes": 0, "successes": 0})
        b["tasks"].append(task)
        b["episodes"] += r["episodes"]
        b["successes"] += r["successes"]
    for b in buckets.values():
        b["success_rate"] = b["successes"] / b["episodes"]
        b["wilson95"] = list(wilson_interval(b["successes"], b["episodes"]))
    n = sum(r["episodes"] for r in per_task.values())
    k = sum(r["successes"] for r in per_task.values())
    return {
        "tasks": per_task,
        "buckets": buckets,
        "average": float(np.mean([b["success_rate"] for b in buckets.values()])),
        "task_mean": float(np.mean([r["success_rate"] for r in per_task.values()])),
        "episodes": n,
        "successes": k,
        "success_rate": k / n,
        "wilson95": list(wilson_interval(k, n)),
    }


@torch.no_grad()
def _run_wave(
    policy,
    venv,
    seeds: list[int],
    wave: int,
    env_cfg: RecordEnvConfig,
    n_videos: int,
    videos: list,
    video_dir: Path,
    oracle: bool = False,
) -> list[dict]:
    n = len(seeds)
    obs, reset_info = venv.reset(seed=seeds)
    info = reset_info
    policy.reset()
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    length = np.zeros(n, dtype=int)
    cam = env_cfg.cameras[0]  # videos show the first camera
    record_video = [wave * n + i < n_videos for i in range(n)]
    frames = [[obs["pixels"][cam][i]] if record_video[i] else [] for i in range(n)]
    first_touch: list[str | None] = [None] * n  # role of the first object a finger pad touched
    nearest: list[str | None] = [None] * n  # role of the object nearest the gripper at the last step
    g_err: list[list[np.ndarray]] = [[] for _ in range(n)]  # per chunk: metres off, per point [P]
    while not done.all():
        if oracle and "privileged_state" not in info:
            raise ValueError(f"oracle_grounding=true: {env_cfg.id} reports no info['privileged_state']")
        if "privileged_state" in info:
            # the oracle diagnostic reads the true positions; otherwise the policy only measures its grounding
            # error against them (`last_grounding_error`) and acts on its own predictions
            obs = {**obs, "privileged_state": info["privileged_state"]}
        action = policy.select_action(obs)  # [N, A]
        err = getattr(policy, "last_grounding_error", None)  # [N, P] when a chunk was just predicted
        if err is not None:
            policy.last_grounding_error = None
            for i in np.flatnonzero(~done):
                g_err[i].append(err[i])
        obs, _, term, trunc, info = venv.step(np.asarray(action, dtype=np.float32))
        is_succ = np.asarray(info.get("is_success", np.zeros(n, dtype=bool)), dtype=bool)
        for i in range(n):
            if done[i]:
                continue
            length[i] += 1
            success[i] |= bool(is_succ[i])
            if "touched" in info and info["touched"][i] and first_touch[i] is None:
                first_touch[i] = str(info["touched"][i])
            if "nearest" in info:
                nearest[i] = str(info["nearest"][i])
            if record_video[i]:
                frames[i].append(obs["pixels"][cam][i])
            done[i] = bool(term[i] or trunc[i])
    rows = []
    for i in range(n):
        rows.append({"seed": int(seeds[i]), "success": bool(success[i]), "length": int(length[i])})
        if nearest[i] is not None:  # our suite reports these (`info["touched"]`, `info["nearest"]`)
            rows[-1].update(first_touch=first_touch[i] or "none", final_nearest=nearest[i])
            rows[-1]["relation"] = str(reset_info["relation"][i])
        if g_err[i]:  # cm between the policy's 3D target/goal and the true ones: first chunk, episode mean
            e = np.stack(g_err[i]) * 100.0  # [chunks, P]
            rows[-1]["grounding_cm"] = {
                p: {"first": round(float(e[0, j]), 2), "mean": round(float(e[:, j].mean()), 2)}
                for j, p in enumerate(PRIVILEGED_POINTS[: e.shape[1]])
            }
        if record_video[i]:
            path = write_mp4(
                frames[i],
                video_dir / f"episode_{wave * n + i:03d}_seed{seeds[i]}.mp4",
                fps=int(env_cfg.control_hz),
            )
            videos.append(str(path))
    return rows
