"""The MetaWorld adapter keeps the svla observation contract, seeds layouts deterministically, renders upright
without shadows, and its expert wrapper solves the task."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from envs import metaworld_env as mw  # noqa: E402
from envs.record import RecordEnvConfig  # noqa: E402


@pytest.fixture
def make():
    envs = []

    def _make(env_id="metaworld/reach-v3", expert=False, **kwargs):
        env = gym.make(env_id, image_size=kwargs.pop("image_size", 32), **kwargs)
        env = mw.MetaWorldExpertWrapper(env) if expert else env
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()  # frees the EGL renderer


def test_ids_are_registered_and_unknown_names_list_the_valid_ones():
    assert len(mw.METAWORLD_IDS) == 50 and "metaworld/pick-place-v3" in gym.registry
    assert gym.spec("metaworld/pick-place-v3").max_episode_steps == 500
    with pytest.raises(ValueError, match="valid: .*metaworld/reach-v3"):
        mw.env_name_of("metaworld/not-a-task-v3")


def test_observation_contract(make):
    env = make(cameras=("front", "wrist"))
    obs, info = env.reset(seed=0)
    assert set(obs["pixels"]) == {"front", "wrist"}
    for img in obs["pixels"].values():
        assert img.dtype == np.uint8 and img.shape == (32, 32, 3) and img.std() > 1  # not blank
    assert obs["agent_pos"].dtype == np.float32 and obs["agent_pos"].shape == (4,)
    assert obs["instruction"] == info["instruction"] == mw.task_descriptions()["reach-v3"]
    assert env.observation_space.contains(obs)
    assert info["is_success"] is False
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert isinstance(info["is_success"], bool) and np.isfinite(reward)
    assert env.unwrapped._sim.model.vis.quality.shadowsize == 0


def test_same_seed_same_layout_other_seed_other_layout(make):
    env = make()
    a, _ = env.reset(seed=7)
    goal_a = env.unwrapped._sim._target_pos.copy()
    b, _ = env.reset(seed=7)
    np.testing.assert_array_equal(a["pixels"]["front"], b["pixels"]["front"])
    np.testing.assert_array_equal(goal_a, env.unwrapped._sim._target_pos)
    env.reset(seed=8)
    assert not np.allclose(goal_a, env.unwrapped._sim._target_pos)


def test_front_camera_is_upright(make):
    """After the adapter's 180-degree flip, the camera's image-up direction points up in the world."""
    env = make()
    env.reset(seed=0)
    sim = env.unwrapped._sim
    for cam in ("corner", "corner2", "corner3"):
        cam_id = sim.model.camera(cam).id
        image_up = sim.data.cam_xmat[cam_id].reshape(3, 3)[:, 1]  # camera +y = image up before the flip
        assert cam in mw.FLIPPED_CAMERAS and -image_up[2] > 0, cam


def test_expert_wrapper_solves_reach_and_success_terminates(make):
    env = make(expert=True)
    _, info = env.reset(seed=0)
    steps = 0
    while steps < 200:
        steps += 1
        action = info["expert_action"]
        assert action.dtype == np.float32 and action.shape == (4,) and np.all(np.abs(action) <= 1)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert info["is_success"] and terminated and not truncated, f"no success after {steps} steps"


def test_time_limit_comes_from_the_wrapper(make):
    env = make(max_episode_steps=3)
    env.reset(seed=0)
    results = [env.step(np.zeros(4, np.float32)) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]


def test_env_config_validation_quotes_bad_values():
    base = {"id": "metaworld/reach-v3", "control_hz": 80.0}
    RecordEnvConfig(**base)  # valid
    with pytest.raises(ValueError, match="control_hz must be 80, got 10"):
        RecordEnvConfig(**{**base, "control_hz": 10.0})
    with pytest.raises(ValueError, match=r"unknown MetaWorld option\(s\) \['max_step'\]"):
        RecordEnvConfig(**base, kwargs={"max_step": 0.1})
    with pytest.raises(ValueError, match=r"got \['side'\]"):
        RecordEnvConfig(**base, cameras=["side"])
    RecordEnvConfig(**base, cameras=["side"], kwargs={"camera_names": {"side": "topview"}})


def test_image_camera_renders_exactly_what_lerobots_metaworld_env_renders(make):
    """The `top` camera (recorded as `observation.image`) is lerobot's MetaworldEnv frame: same camera pose,
    flip, layout and state at the same seed. Shadows are off on both sides (rendering them costs ~0.5 s per
    480 px frame here); `shadows=True` keeps MetaWorld's shadow map, as lerobot does."""
    from lerobot.envs.metaworld import MetaworldEnv

    theirs = MetaworldEnv("push-v3", obs_type="pixels_agent_pos")
    try:
        theirs._ensure_env()  # builds the sim; its renderer (and shadow map) is created on the first render
        theirs._env.model.vis.quality.shadowsize = 0
        ref, _ = theirs.reset(seed=3)
        ours = make("metaworld/push-v3", image_size=480, cameras=("top",))
        obs, _ = ours.reset(seed=3)
        assert obs["pixels"]["top"].shape == ref["pixels"].shape == (480, 480, 3)
        np.testing.assert_allclose(obs["agent_pos"], ref["agent_pos"], atol=1e-6)
        assert np.abs(obs["pixels"]["top"].astype(int) - ref["pixels"]).mean() < 0.01
    finally:
        theirs.close()
    shadowed = make("metaworld/push-v3", cameras=("top", "front"), shadows=True)
    obs, _ = shadowed.reset(seed=3)
    assert shadowed.unwrapped._sim.model.vis.quality.shadowsize > 0
    np.testing.assert_array_equal(obs["pixels"]["top"], obs["pixels"]["front"])  # the same view
