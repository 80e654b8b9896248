"""The lerobot plugin (`lerobot_policy_svla`): lerobot discovers the `svla` type, its factory builds our
policy from an exported checkpoint, and lerobot-eval's observation path gives exactly our actions."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.envs.utils import preprocess_observation
from lerobot.policies.factory import make_policy, make_pre_post_processors
from lerobot_policy_svla.env_svla import SvlaEnv
from lerobot_policy_svla.export import ExportConfig, export

from vla.checkpoint import POLICY_TYPE_FILE, CheckpointError, load_policy, save_policy
from vla.config import HeadConfig, PolicyConfig
from vla.policy import SpatialVLAPolicy

S, A = 9, 4  # the svla tasks' agent_pos and action sizes
STATS = {
    "observation.state": {"mean": [0.1] * S, "std": [0.5] * S},
    "action": {"mean": [0.05] * A, "std": [0.5] * A},
}
INSTRUCTIONS = ["pick up the red cube", "touch the ball closest to the bin"]


def _obs(n: int, seed: int) -> dict:
    """A batched env observation as our vector envs give it (uint8 HWC images, float32 state)."""
    rng = np.random.default_rng(seed)
    return {
        "pixels": {c: rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8) for c in ("front", "wrist")},
        "agent_pos": rng.normal(size=(n, S)).astype(np.float32),
        "instruction": np.array(INSTRUCTIONS[:n]),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    torch.manual_seed(0)
    cfg = PolicyConfig(head=HeadConfig(name="l1_chunk"), chunk_size=4, n_action_steps=3)
    ckpt = save_policy(SpatialVLAPolicy(cfg, STATS).eval(), root / "ckpt")
    out = export(ExportConfig(checkpoint=str(ckpt), output=str(root / "lerobot"), device="cpu"))
    return ckpt, out


def _lerobot_eval_policy(path: Path):
    """Policy and processors exactly as `lerobot-eval --policy.path=<path> --env.type=svla` builds them."""
    cfg = PreTrainedConfig.from_pretrained(path)
    cfg.pretrained_path = path
    env_cfg = SvlaEnv(task="svla/Lift-v0", image_size=112)
    policy = make_policy(cfg=cfg, env_cfg=env_cfg, rename_map={})
    policy.eval()
    overrides = {
        "device_processor": {"device": str(policy.config.device)},
        "rename_observations_processor": {"rename_map": {}},
    }
    pre, post = make_pre_post_processors(
        policy_cfg=cfg, pretrained_path=cfg.pretrained_path, preprocessor_overrides=overrides
    )
    return policy, pre, post


def test_lerobot_factory_and_our_evaluator_give_identical_actions(exported):
    """Same checkpoint, same observations (a new one every step, batch of 2 with different instructions):
    lerobot's factory + lerobot-eval's observation path vs `load_policy(ckpt).select_action`, over 7 steps of
    the action queue (n_action_steps=3: re-plans at steps 0, 3 and 6), after a reset."""
    ckpt, out = exported
    policy, pre, post = _lerobot_eval_policy(out)
    assert type(policy).__name__ == "SvlaPolicy" and policy.config.type == "svla"
    ours = load_policy(ckpt, device="cpu").eval()
    ours.reset()
    policy.reset()
    for step in range(7):
        obs = _obs(2, seed=step)
        batch = preprocess_observation({k: v for k, v in obs.items() if k != "instruction"})
        batch["task"] = list(obs["instruction"])  # what lerobot-eval reads from env.call("task_description")
        with torch.inference_mode():
            action = post(policy.select_action(pre(batch)))
        expected = ours.select_action(obs)  # [2, A]
        assert action.shape == (2, A) and action.dtype == torch.float32
        np.testing.assert_array_equal(action.numpy(), expected, err_msg=f"step {step}")
    assert not np.allclose(expected[0], expected[1])  # the two rows (instructions, images) really differ


def test_lerobot_eval_cli_rolls_out_the_export_like_our_policy(exported, tmp_path):
    """`lerobot-eval --policy.path=<export> --env.type=svla` in a fresh process (lerobot's own plugin
    discovery: nothing of ours is imported by hand there) gets, per episode, the rewards our policy earns in
    the same envs and seeds: same actions at every step, instruction included (lerobot-eval reads it through
    `task_description`) and with `--policy.n_action_steps=2` overriding the checkpoint's 3."""
    import gymnasium as gym

    from envs.record import RecordEnvConfig

    ckpt, out = exported
    steps, seed = 6, 1000
    args = f"""--policy.path={out} --policy.device=cpu --policy.n_action_steps=2
        --env.type=svla --env.task=svla/Lift-v0 --env.image_size=112 --env.episode_length={steps}
        --eval.n_episodes=2 --eval.batch_size=2 --eval.use_async_envs=false --seed={seed}
        --output_dir={tmp_path / "eval"}"""
    cmd = [sys.executable, "-m", "lerobot.scripts.lerobot_eval", *args.split()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    theirs = info["per_task"][0]["metrics"]["sum_rewards"]

    env_cfg = RecordEnvConfig(id="svla/Lift-v0", image_size=112, max_episode_steps=steps)
    venv = gym.vector.SyncVectorEnv([env_cfg.make, env_cfg.make])
    policy = load_policy(ckpt, device="cpu").eval()
    policy.cfg.n_action_steps = 2  # as svla-eval's n_action_steps=2 does
    obs, _ = venv.reset(seed=[seed, seed + 1])
    policy.reset()
    ours = np.zeros(2)
    for _ in range(steps):
        obs, reward, term, trunc, _ = venv.step(policy.select_action(obs))
        ours += reward
        assert not term.any()  # an untrained policy: every episode runs the full `steps`
    venv.close()
    assert theirs == pytest.approx(ours.tolist(), rel=1e-5, abs=1e-7)
    assert theirs[0] != pytest.approx(theirs[1])  # two different episodes


def test_exported_directory_is_also_our_checkpoint(exported):
    """One set of weights: the export loads with our loader and acts like the original checkpoint."""
    ckpt, out = exported
    obs = _obs(2, seed=11)
    a = load_policy(ckpt, device="cpu").eval().predict_action_chunk(obs)
    b = load_policy(out, device="cpu").eval().predict_action_chunk(obs)
    assert torch.equal(a, b)
    assert json.loads((out / "config.json").read_text())["type"] == "svla"
    assert not (out / "training_state.pt").exists()


def test_other_types_and_incomplete_checkpoints_are_clear_errors(exported, tmp_path):
    ckpt, out = exported
    act = tmp_path / "act"
    act.mkdir()
    (act / POLICY_TYPE_FILE).write_text("act")
    with pytest.raises(CheckpointError, match=r"policy type 'act'.*spatial_vla"):
        export(ExportConfig(checkpoint=str(act), output=str(tmp_path / "x")))
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    (broken / "head.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing \['head.safetensors'\]"):
        export(ExportConfig(checkpoint=str(broken), output=str(tmp_path / "y")))
    assert not (tmp_path / "y").exists()
    with pytest.raises(CheckpointError, match="must lie outside"):
        export(ExportConfig(checkpoint=str(ckpt), output=str(ckpt / "lerobot")))
    with pytest.raises(CheckpointError, match="overwrite=true"):
        export(ExportConfig(checkpoint=str(ckpt), output=str(out)))
    from lerobot_policy_svla.modeling_svla import SvlaPolicy

    with pytest.raises(CheckpointError, match="svla-export-lerobot"):
        SvlaPolicy.from_pretrained(ckpt)  # a checkpoint that was never exported has no config.json


def test_config_json_that_disagrees_with_the_checkpoint_is_an_error(exported, tmp_path):
    _, out = exported
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    cfg = json.loads((edited / "config.json").read_text())
    cfg["chunk_size"], cfg["n_action_steps"] = 6, 2
    (edited / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"chunk_size 6 vs checkpoint 4"):
        _lerobot_eval_policy(edited)


def test_make_policy_without_a_checkpoint_points_to_svla_train(exported):
    _, out = exported
    cfg = PreTrainedConfig.from_pretrained(out)  # no pretrained_path: lerobot would build a fresh policy
    with pytest.raises(ValueError, match="svla-train"):
        make_policy(cfg=cfg, env_cfg=SvlaEnv(task="svla/Lift-v0", image_size=112))


def test_lerobot_save_pretrained_writes_a_directory_both_loaders_read(exported, tmp_path):
    """`SvlaPolicy.save_pretrained` (what lerobot's own tools call) writes our layout + config.json: lerobot's
    `from_pretrained` and our `load_policy` both read it back into the same policy."""
    from lerobot_policy_svla.modeling_svla import SvlaPolicy

    _, out = exported
    policy = SvlaPolicy.from_pretrained(out)
    policy.save_pretrained(tmp_path / "saved")
    obs = _obs(2, seed=3)
    batch = preprocess_observation({k: v for k, v in obs.items() if k != "instruction"})
    batch["task"] = list(obs["instruction"])
    chunk = policy.predict_action_chunk(batch)  # [2, H, A]
    assert torch.equal(chunk, SvlaPolicy.from_pretrained(tmp_path / "saved").predict_action_chunk(batch))
    assert torch.equal(chunk, load_policy(tmp_path / "saved").predict_action_chunk(obs))
