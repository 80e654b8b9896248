"""`svla-dagger`: DAgger data (Ross, Gordon & Bagnell 2011) for a trained policy: the policy drives, the
scripted expert labels.

Behaviour cloning only sees states the expert visits; a policy that drifts a few centimetres (it starts to
lower the object before it is over the plate, closes beside the cube) is then off the data and has no
example of the way back, so small errors compound. DAgger rolls the learner out, records at every state it
reaches what the expert would do there, and trains on the aggregate of these and the original demonstrations.

Design:
- The rollout is `svla-record`'s expert pool (`envs.record.record`) with a `PolicyDriver`: each frame stores
  the observation and the expert's action for that state (the label, as in every dataset we record); the env
  executes the policy's action, or with probability `beta` per step the expert's (the DAgger mixture
  pi_i = beta pi* + (1 - beta) pi_hat; `beta=0` after the first iteration is the usual choice).
- The observation -> model input path is `svla-eval`'s: the vector env's observation, sliced per env, goes
  to `policy.predict_action_chunk` (the processor's `raw_from_env`); each env keeps its own action queue and
  re-plans every `n_action_steps`, so a learner here behaves exactly as in evaluation.
- Experts label off-distribution states sensibly: their phases advance on measured state and fall back when
  the object is no longer in the hand or the gripper left the target's column (`envs/experts.py`).
- Episodes that the TimeLimit ends are kept by default (`keep_truncated=true`): the labels of a failed
  rollout are the point. The output is an ordinary LeRobot dataset; merge it with the demonstrations
  (`svla-merge`) and train as usual. `meta/svla_recording.json` records the driver (checkpoint, its weight
  hash, beta) next to the seeds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.hydra_utils import ConfigError
from envs.manifest import hash_files
from envs.record import RecordConfig, RecordingSummary, record
from vla.checkpoint import check_features, read_features
from vla.evaluate import env_features, rollout_policy


@dataclass
class DaggerConfig(RecordConfig):
    """`svla-dagger` (`conf/dagger.yaml`): `svla-record`'s options plus the learner.

    Attributes:
        checkpoint: the policy checkpoint (from svla-train) that drives the rollouts.
        beta: probability per step that the expert's action is executed instead of the policy's.
        n_action_steps: re-plan every this many actions; 0 = the checkpoint's value.
        oracle_grounding: the policy reads the true target/goal positions (see `svla-eval`); a diagnostic.
        device: where the policy runs (`auto`, `cpu`, `cuda`).
    """

    checkpoint: str = ""
    beta: float = 0.0
    n_action_steps: int = 0
    oracle_grounding: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.checkpoint:
            raise ConfigError("checkpoint is empty: pass checkpoint=<dir written by svla-train>")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"beta must be in [0, 1], got {self.beta!r}")
        if self.n_action_steps < 0:
            raise ConfigError(
                f"n_action_steps must be >= 0 (0 = the checkpoint's), got {self.n_action_steps!r}"
            )


def _rows(x: Any, idx: list[int]) -> Any:
    """The rows `idx` of a batched vector-env observation (arrays, lists of strings, nested dicts)."""
    if isinstance(x, dict):
        return {k: _rows(v, idx) for k, v in x.items()}
    if isinstance(x, np.ndarray | torch.Tensor):
        return x[idx]
    return [x[i] for i in idx]


class PolicyDriver:
    """`envs.record.Driver` backed by a policy: one action queue per env, chunks predicted for the envs
    whose queue ran out (one batched call); executed = the policy's action, or the expert's with probability
    beta."""

    def __init__(self, policy, num_envs: int, beta: float = 0.0, seed: int = 0, info: dict | None = None):
        self.policy, self.beta = policy, beta
        self.queues: list[deque] = [deque() for _ in range(num_envs)]
        self.rng = np.random.default_rng(seed)
        self.info = dict(info or {})
        self.steps = self.expert_steps = 0

    def reset(self, slot: int) -> None:
        self.queues[slot].clear()

    @torch.no_grad()
    def act(self, obs: dict, expert: np.ndarray, privileged: np.ndarray, active: list[int]) -> np.ndarray:
        need = [i for i in active if not self.queues[i]]
        if need:
            sub = _rows(obs, need)
            if getattr(self.policy, "oracle_grounding", False):
                sub["privileged_state"] = privileged[need]
            chunk = self.policy.predict_action_chunk(sub).cpu().numpy()  # [len(need), H, A]
            for j, i in enumerate(need):
                self.queues[i].extend(chunk[j, : self.policy.cfg.n_action_steps])
        out = np.array(expert, dtype=np.float32, copy=True)  # [N, A]
        for i in active:
            action = self.queues[i].popleft()
            self.steps += 1
            if self.beta > 0 and self.rng.random() < self.beta:
                self.expert_steps += 1  # the expert acts this step; the policy's action is dropped
            else:
                out[i] = action
        return out

    def describe(self) -> dict[str, Any]:
        return {**self.info, "beta": self.beta, "steps": self.steps, "expert_steps": self.expert_steps}


def dagger(cfg: DaggerConfig) -> RecordingSummary:
    """Roll `cfg.checkpoint` out on `cfg.env` with the expert labelling every state; write the dataset."""
    ckpt = Path(cfg.checkpoint)
    if not ckpt.is_dir():
        raise ConfigError(f"checkpoint {cfg.checkpoint!r} is not a directory (a svla-train checkpoint)")
    for task in cfg.env.task_configs():
        env = task.make()
        try:
            feats = env_features(task, env.observation_space, env.action_space)
        finally:
            env.close()
        check_features(read_features(ckpt), feats, f"env {task.id}")
    policy = rollout_policy(ckpt, cfg.device, cfg.n_action_steps, cfg.oracle_grounding)
    info = {
        "kind": "dagger",
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_sha256": hash_files(list(ckpt.rglob("*.safetensors"))),
        "n_action_steps": policy.cfg.n_action_steps,
        "oracle_grounding": cfg.oracle_grounding,
    }
    driver = PolicyDriver(policy, cfg.num_envs, cfg.beta, seed=cfg.seed, info=info)
    return record(cfg, driver=driver)
