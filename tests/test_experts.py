"""Scripted experts: success per task, noise option, and the expert-action wrapper inside vector envs."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.experts import EXPERTS, ExpertActionWrapper, make_expert


def _run(env: gym.Env, seed: int, noise_std: float = 0.0) -> bool:
    expert = make_expert(env, noise_std=noise_std, seed=seed)
    env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(expert.act(env))
        if info["is_success"]:
            return True
        if terminated or truncated:
            return False


@pytest.mark.parametrize("task_id", envs.TASK_IDS)
def test_expert_succeeds(task_id):
    env = envs.make(task_id, cameras=())
    try:
        assert all(_run(env, seed) for seed in range(100, 104))
    finally:
        env.close()


def test_every_task_has_an_expert():
    assert set(EXPERTS) == set(envs.TASK_IDS)
    with pytest.raises(ValueError, match="not an svla task"):
        make_expert(gym.make("CartPole-v1"))


def test_noisy_expert_is_seeded_and_still_works():
    env = envs.make("svla/Lift-v0", cameras=())
    env.reset(seed=0)
    a = make_expert(env, noise_std=0.1, seed=1).act(env)
    b = make_expert(env, noise_std=0.1, seed=1).act(env)
    c = make_expert(env, noise_std=0.0).act(env)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert _run(env, 3, noise_std=0.1)
    env.close()


def _make(task_id: str) -> gym.Env:
    return ExpertActionWrapper(envs.make(task_id, image_size=32, cameras=("front",)))


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_expert_action_drives_a_vector_env(vector_cls):
    kwargs = {"context": "spawn"} if vector_cls is gym.vector.AsyncVectorEnv else {}
    venv = vector_cls([partial(_make, "svla/Lift-v0")] * 2, **kwargs)
    try:
        obs, infos = venv.reset(seed=[0, 1])
        assert obs["pixels"]["front"].shape == (2, 32, 32, 3) and len(obs["instruction"]) == 2
        done = np.zeros(2, bool)
        for _ in range(60):
            actions = np.asarray(infos["expert_action"], np.float32)
            assert actions.shape == (2, 4)
            obs, _, terminated, truncated, infos = venv.step(actions)
            done |= infos["is_success"] & infos["_is_success"]
            if done.all():
                break
        assert done.all()
    finally:
        venv.close()


def test_pick_expert_starts_over_when_the_object_is_dropped():
    """DAgger labels states a learner reached: after the object falls out of the hand mid-carry the expert
    must go back for it (not carry an empty gripper to the plate), and still finish the task."""
    env = envs.make("svla/PickPlace-v0", cameras=(), max_episode_steps=300)
    try:
        expert = make_expert(env)
        env.reset(seed=7)
        while expert.phase < 4:  # until it carries the object
            env.step(expert.act(env))
        u = env.unwrapped
        phases = []
        for _ in range(8):  # a learner opens the hand and moves away: the object drops
            expert.act(env)
            phases.append(expert.phase)
            env.step(np.array([0.0, 0.0, 0.5, -1.0], np.float32))
        assert np.linalg.norm(u.robot.ee_pos - u.object_pos(u.episode.target)) > 0.04
        label = expert.act(env)
        assert min(phases) < 2 and label[3] == -1.0  # it went back to the object, hand open
        for _ in range(200):
            _, _, terminated, truncated, info = env.step(label)
            if info["is_success"] or terminated or truncated:
                break
            label = expert.act(env)
        assert info["is_success"]
    finally:
        env.close()
