"""Task envs: Gymnasium contract, determinism, configs, instructions, bad input, instability handling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.experts import make_expert
from envs.hydra_utils import to_config
from envs.robot import STATE_DIM
from envs.scene import SHAPES, SceneSpec, object_spec
from envs.tasks import TASKS
from envs.tasks.config import EnvConfig, TaskConfig
from envs.tasks.language import CHARSET, refer

CONF_ENV = Path(__file__).resolve().parents[1] / "conf" / "env"
SMALL = {"image_size": 32}


@pytest.mark.parametrize("task_id", envs.TASK_IDS)
def test_check_env(task_id):
    env = envs.make(task_id, **SMALL, render_mode="rgb_array")
    try:
        check_env(env.unwrapped, skip_render_check=False)
        obs, info = env.reset(seed=0)
        assert set(obs) == {"pixels", "agent_pos", "instruction"}
        assert set(obs["pixels"]) == {"front", "wrist"} and obs["pixels"]["front"].shape == (32, 32, 3)
        assert obs["agent_pos"].shape == (STATE_DIM,) and obs["agent_pos"].dtype == np.float32
        assert obs["instruction"] == info["instruction"] and set(obs["instruction"]) <= set(CHARSET)
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert isinstance(info["is_success"], bool)
        assert reward == pytest.approx(sum(info["reward_components"].values()))
        assert env.render().shape == (32, 32, 3)
        assert env.spec.max_episode_steps == TASKS[task_id].max_episode_steps
    finally:
        env.close()


def _rollout(task_id: str, seed: int) -> list[dict]:
    env = envs.make(task_id, **SMALL)
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    try:
        while True:
            obs, _, terminated, truncated, _ = env.step(expert.act(env))
            out.append(obs)
            if terminated or truncated:
                return out
    finally:
        env.close()


def _same(a: dict, b: dict) -> bool:
    return (
        a["instruction"] == b["instruction"]
        and np.array_equal(a["agent_pos"], b["agent_pos"])
        and all(np.array_equal(a["pixels"][k], b["pixels"][k]) for k in a["pixels"])
    )


@pytest.mark.parametrize("task_id", ["svla/Lift-v0", "svla/Push-v0"])
def test_same_seed_same_episode(task_id):
    a, b = _rollout(task_id, 7), _rollout(task_id, 7)
    assert len(a) == len(b) > 5
    assert all(_same(x, y) for x, y in zip(a, b, strict=True))


def test_different_seeds_differ():
    env = envs.make("svla/PickPlace-v0", **SMALL)
    obs = [env.reset(seed=s)[0] for s in range(4)]
    env.close()
    assert not any(_same(obs[0], o) for o in obs[1:])
    assert len({o["instruction"] for o in obs}) > 1


def test_unknown_id_lists_valid_ids():
    with pytest.raises(ValueError, match="svla/Reach-v0") as err:
        envs.make("svla/Teleport-v0")
    assert all(t in str(err.value) for t in envs.TASK_IDS)
    with pytest.raises(ValueError, match="'teleport'"):
        envs.task_id_for("teleport")


def test_bad_options_and_actions():
    with pytest.raises(ValueError, match="'colour'"):
        envs.make("svla/Lift-v0", colour="red")
    with pytest.raises(ValueError, match="'top'"):
        TaskConfig(cameras=("front", "top"))
    with pytest.raises(ValueError, match="0.5"):
        TaskConfig(control_hz=0.5)
    env = envs.make("svla/Lift-v0", **SMALL)
    env.reset(seed=0)
    try:
        with pytest.raises(ValueError, match=r"shape \(3,\)"):
            env.step(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="nan"):
            env.step(np.array([0, np.nan, 0, 0], np.float32))
        _, _, terminated, _, _ = env.step(np.array([5.0, 0, 0, 0], np.float32))  # clipped, not an error
        assert not terminated
    finally:
        env.close()


@pytest.mark.parametrize("bad", [np.nan, 1e10])
def test_instability_ends_episode_with_reason(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warning to ./MUJOCO_LOG.TXT
    env = envs.make("svla/Stack-v0", **SMALL)
    env.reset(seed=0)
    try:
        env.unwrapped.scene.data.qvel[:] = bad
        obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert terminated and not truncated and reward == 0.0
        assert info["termination_reason"].startswith("unstable_simulation")
        assert env.observation_space.contains(obs)
    finally:
        env.close()


# our own tasks (svla/ ids); MetaWorld and LIBERO configs have their own tests
OUR_YAMLS = sorted(p for p in CONF_ENV.glob("*.yaml") if "id: svla/" in p.read_text())


@pytest.mark.parametrize("path", OUR_YAMLS, ids=[p.stem for p in OUR_YAMLS])
def test_env_yaml_mirrors_config(path):
    from omegaconf import OmegaConf

    cfg = to_config(OmegaConf.load(path), EnvConfig)
    assert cfg.id in envs.TASK_IDS and TASKS[cfg.id].name == path.stem
    assert cfg.max_episode_steps == TASKS[cfg.id].max_episode_steps
    env = cfg.make()
    assert env.spec.max_episode_steps == cfg.max_episode_steps
    env.close()


def test_every_task_has_a_yaml():
    assert {e.name for e in TASKS.values()} <= {p.stem for p in CONF_ENV.glob("*.yaml")}


def test_env_config_validation_quotes_values():
    with pytest.raises(ValueError, match="'gym/CartPole-v1'"):
        EnvConfig(id="gym/CartPole-v1")
    with pytest.raises(ValueError, match="'image_size'"):
        EnvConfig(kwargs={"image_size": 64})
    kw = EnvConfig(id="svla/Reach-v0", image_size=64, kwargs={"max_step": 0.02}).make_kwargs()
    assert kw["image_size"] == 64 and kw["max_step"] == 0.02 and kw["max_episode_steps"] == 60


def test_relations_pick_one_object_or_none():
    rng = np.random.default_rng(0)
    cubes = (
        object_spec("cube", "red", "small", (-0.15, 0.0)),
        object_spec("cube", "green", "large", (0.1, 0.0)),
        object_spec("cube", "blue", "small", (0.12, 0.15)),
    )
    ball = object_spec("sphere", "yellow", "medium", (0.13, -0.12))
    spec = SceneSpec(objects=(*cubes, ball))
    assert refer("leftmost", cubes, spec, rng).name == "red_cube"
    assert refer("leftmost", cubes, spec, rng).phrase == "the leftmost cube"
    assert refer("rightmost", cubes, spec, rng) is None  # 0.10 vs 0.12: too close to call
    assert refer("larger", cubes, spec, rng).name == "green_cube"
    assert refer("smaller", cubes, spec, rng) is None  # two small cubes: ambiguous
    near = refer("closest_to_anchor", cubes, spec, rng)
    assert near.name == "green_cube" and near.phrase == "the cube closest to the yellow ball"
    assert refer("farthest_from_camera", cubes, spec, rng).name == "blue_cube"
    assert refer("closest_to_camera", cubes, spec, rng) is None  # red and green are about equally far
    with pytest.raises(ValueError, match="'between'"):
        refer("between", cubes, spec, rng)


def test_camera_jitter_moves_the_front_camera():
    env = envs.make("svla/Reach-v0", image_size=32, camera_jitter=0.03)
    env.reset(seed=0)
    eye0 = env.unwrapped.episode.spec.front_eye
    env.reset(seed=1)
    assert env.unwrapped.episode.spec.front_eye != eye0
    env.close()


def test_headless_env_has_no_pixels():
    env = gym.make("svla/Lift-v0", cameras=())
    obs, _ = env.reset(seed=0)
    assert "pixels" not in obs and env.observation_space.contains(obs)
    env.close()


def test_info_names_the_role_of_the_touched_and_the_nearest_object():
    """Grasp a wrong object with the expert (pointed at it), then ask the env about the real episode: the pads
    touch an "other" object and the gripper is nearest it; the same run on the named object says "target"."""
    env = envs.make("svla/PickPlace-v0", cameras=())
    u = env.unwrapped
    try:
        for wrong in (False, True):
            _, info = env.reset(seed=5)
            assert info["touched"] == "" and info["nearest"] in ("target", "other")
            episode = u.episode
            movable = [o.name for o in episode.spec.objects if SHAPES[o.shape].movable]
            others = [n for n in movable if n != episode.target]
            if wrong:  # the expert reads `episode.target`: point it at another object
                u.episode = dataclasses.replace(episode, target=others[0])
            expert, touched = make_expert(env), []
            for _ in range(40):
                action = expert.act(env)
                aimed, u.episode = u.episode, episode  # the env reports roles of the real episode
                _, _, term, trunc, info = env.step(action)
                u.episode = aimed
                touched.append(info["touched"])
                if term or trunc or (u.robot.ee_pos[2] > 0.12 and touched[-1]):
                    break
            expected = "other" if wrong else "target"
            assert next(t for t in touched if t) == expected, touched
            assert info["nearest"] == expected
    finally:
        env.close()


def test_object_off_the_table_ends_the_episode():
    """A cube pushed over the edge falls for ever (no floor): the episode ends instead of recording
    positions metres below the table (they would poison the ground-truth statistics of a dataset)."""
    import mujoco

    env = envs.make("svla/Push-v0", **SMALL)
    env.reset(seed=0)
    try:
        u = env.unwrapped
        name = u.episode.target
        model, data = u.scene.model, u.scene.data
        adr = model.jnt_qposadr[model.body(name).jntadr[0]]
        data.qpos[adr : adr + 3] = [0.45, 0.0, 0.05]  # beyond the table's edge (x = 0.3)
        mujoco.mj_forward(model, data)
        steps = 0
        for steps in range(1, 41):  # noqa: B007 (the count is asserted)
            _, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
            if terminated:
                break
        assert terminated and not truncated and not info["is_success"] and steps > 1
        assert info["termination_reason"] == f"object_off_table: {name}"
        assert u.object_pos(name)[2] < -0.05
    finally:
        env.close()


@pytest.mark.parametrize("task_id", ["svla/Reach-v0", "svla/PickPlace-v0"])
def test_objects_state_describes_every_object_where_the_target_is(task_id):
    """`info["privileged_objects"]`: one slot per scene object with its identity; the target's slot holds the
    same position and image coordinates as the privileged target/goal state, and stays with it as it moves."""
    from envs.scene import COLORS, SIZES
    from envs.tasks.base import OBJECT_FIELDS, OBJECT_SLOTS, PRIVILEGED_NAMES

    env = envs.make(task_id, cameras=())
    try:
        _, info = env.reset(seed=3)
        spec = env.unwrapped.episode.spec
        for step in range(2):
            objs = info["privileged_objects"].reshape(OBJECT_SLOTS, len(OBJECT_FIELDS))
            f = {n: i for i, n in enumerate(OBJECT_FIELDS)}
            assert objs[:, f["present"]].sum() == len(spec.objects) and not objs[len(spec.objects) :].any()
            for k, o in enumerate(spec.objects):
                assert list(SHAPES)[int(objs[k, f["shape"]])] == o.shape
                assert list(COLORS)[int(objs[k, f["color"]])] == o.color
                assert list(SIZES)[int(objs[k, f["size"]])] == o.size_label
            t = [o.name for o in spec.objects].index(env.unwrapped.episode.target)
            priv = info["privileged_state"]
            np.testing.assert_allclose(objs[t, f["x"] : f["z"] + 1], priv[:3], atol=1e-6)
            for cam in ("front", "wrist"):
                i = PRIVILEGED_NAMES.index(f"target_{cam}_u")
                np.testing.assert_allclose(
                    objs[t, f[f"{cam}_u"] : f[f"{cam}_v"] + 1], priv[i : i + 2], atol=1e-6
                )
            if step == 0:
                for _ in range(5):
                    _, _, _, _, info = env.step(np.array([0.5, 0.3, -0.5, 1.0], np.float32))
    finally:
        env.close()
