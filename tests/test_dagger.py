"""svla-dagger: the learner's actions are executed, the expert's are recorded, and a learner rolled out here
behaves exactly as in svla-eval."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import TINY_IMG as IMG
from conftest import tiny_train_overrides
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from envs.experts import make_expert
from envs.hydra_utils import ConfigError, compose
from envs.record import RecordConfig, record
from vla.checkpoint import CheckpointError, load_policy
from vla.dagger import DaggerConfig, dagger
from vla.train import train
from vla.train_config import TrainConfig

STEPS = 6  # short episodes: the TimeLimit ends them (kept, keep_truncated=true)


@pytest.fixture(scope="module")
def checkpoint(tiny_lift_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("dagger_train")
    cfg = compose(
        "train", tiny_train_overrides(tiny_lift_dataset, out, "steps=2", "save_every=2"), TrainConfig
    )
    return Path(train(cfg)["checkpoint"])


def _cfg(checkpoint, root, *extra) -> DaggerConfig:
    overrides = [f"checkpoint={checkpoint}", "env=lift", "episodes=2", "seed=0", f"root={root}"]
    overrides += [f"env.image_size={IMG}", f"env.max_episode_steps={STEPS}", "progress=false", *extra]
    return compose("dagger", overrides, schema=DaggerConfig)


def _frames(root: Path) -> tuple[np.ndarray, np.ndarray]:
    ds = LeRobotDataset("local/x", root=root)
    states = np.stack([ds.hf_dataset[i]["observation.state"].numpy() for i in range(len(ds.hf_dataset))])
    actions = np.stack([ds.hf_dataset[i]["action"].numpy() for i in range(len(ds.hf_dataset))])
    return states, actions


class _StandStill:
    """A learner that never moves (a driver, not a mock: `record` is what is under test)."""

    def reset(self, slot):
        pass

    def act(self, obs, expert, privileged, active):
        return np.zeros_like(expert)

    def describe(self):
        return {"kind": "stand_still"}


def test_the_driver_acts_and_the_expert_labels(tmp_path):
    cfg = compose(
        "record",
        [
            "env=lift",
            "episodes=1",
            "num_envs=1",
            f"root={tmp_path / 'd'}",
            f"env.image_size={IMG}",
            f"env.max_episode_steps={STEPS}",
            "keep_truncated=true",
            "progress=false",
        ],
        schema=RecordConfig,
    )
    s = record(cfg, driver=_StandStill())
    states, labels = _frames(tmp_path / "d")
    assert len(states) == STEPS and s.info["driver"] == {"kind": "stand_still"}
    assert np.allclose(states[:, :3], states[0, :3], atol=1e-4)  # zero motion was executed: the hand stayed
    env = cfg.env.make()
    env.reset(seed=0)
    first = make_expert(env).act(env)  # the expert's action in that (unchanged) start state
    env.close()
    assert np.abs(first[:3]).max() > 0.1  # it wants to move...
    assert np.allclose(labels, first, atol=1e-5)  # ...and that is what every frame records


def test_policy_driven_rollout_matches_a_live_eval_rollout(checkpoint, tmp_path):
    """beta=0: the recorded states are those the policy itself reaches when rolled out as svla-eval does
    (same seed, the policy's own `select_action` on a vector env): one observation path for both."""
    s = dagger(_cfg(checkpoint, tmp_path / "d"))
    d = s.info["driver"]
    assert d["kind"] == "dagger" and d["beta"] == 0.0 and d["expert_steps"] == 0
    assert len(d["checkpoint_sha256"]) == 64 and s.info["seeds"] == [0, 1]
    states, labels = _frames(tmp_path / "d")
    assert len(states) == 2 * STEPS

    policy = load_policy(checkpoint).eval()
    cfg = _cfg(checkpoint, tmp_path / "unused")
    venv = gym.vector.SyncVectorEnv([lambda: cfg.env.make()])
    live = []
    for seed in (0, 1):
        obs, _ = venv.reset(seed=[seed])
        policy.reset()
        for _ in range(STEPS):
            live.append(obs["agent_pos"][0].copy())
            obs, *_ = venv.step(np.asarray(policy.select_action(obs), np.float32))
    venv.close()
    np.testing.assert_allclose(states, np.stack(live), atol=1e-5)
    # the labels are the expert's, not the (untrained) policy's: its first command moves at full speed
    assert np.abs(labels[0, :3]).max() > 0.5


def test_beta_one_is_plain_expert_recording(checkpoint, tmp_path):
    s = dagger(_cfg(checkpoint, tmp_path / "d", "beta=1.0"))
    assert s.info["driver"]["expert_steps"] == s.info["driver"]["steps"] > 0
    rec = compose(
        "record",
        [
            "env=lift",
            "episodes=2",
            "num_envs=1",
            f"root={tmp_path / 'e'}",
            f"env.image_size={IMG}",
            f"env.max_episode_steps={STEPS}",
            "keep_truncated=true",
            "progress=false",
        ],
        schema=RecordConfig,
    )
    record(rec)
    for a, b in zip(_frames(tmp_path / "d"), _frames(tmp_path / "e"), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_dagger_config_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="beta must be in"):
        _cfg(checkpoint, tmp_path / "d", "beta=1.5")
    with pytest.raises(ConfigError, match="'.*nope' is not a directory"):
        dagger(_cfg(tmp_path / "nope", tmp_path / "d"))
    # a checkpoint whose cameras the env lacks: both sides named, before any rollout
    with pytest.raises(CheckpointError, match=r"cameras \['front', 'wrist'\] vs env svla/Lift-v0 cameras"):
        dagger(_cfg(checkpoint, tmp_path / "d", "env.cameras=[front]"))
    assert not (tmp_path / "d").exists()
