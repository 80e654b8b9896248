"""ACT peer baseline (`vla.baselines.act`): lerobot's ACT trained by `train_act` on a recorded dataset,
resumed after kill -9 to the same weights, loaded back through `vla.checkpoint.load_policy` with identical
actions, rolled out by `svla-eval`, the same model inputs from dataset frames and live env observations, and
clear errors."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from envs.hydra_utils import compose
from envs.record import RecordConfig, load_recording_info, record
from vla.baselines.act import ActPolicy, ActPolicyConfig, ActTrainConfig, train_act
from vla.baselines.act_policy import act_features, dataset_stats, save_act_policy
from vla.checkpoint import POLICY_TYPE_FILE, CheckpointError, load_policy
from vla.data import DatasetError, open_dataset
from vla.evaluate import EvalConfig, evaluate
from vla.train_config import DatasetConfig

REPO = Path(__file__).resolve().parents[1]
IMG = 64
STEPS, SAVE_EVERY = 6, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "lift"
    overrides = ["env=lift", "episodes=2", "num_envs=1", f"root={root}", "repo_id=local/lift"]
    record(compose("record", [*overrides, f"env.image_size={IMG}", "progress=false"], schema=RecordConfig))
    return root


def _overrides(dataset, out, *extra) -> list[str]:
    """The CLI's debug preset (a tiny ACT), on the test dataset."""
    return [
        "debug=train_act_fast",
        f"dataset.root={dataset}",
        "dataset.repo_id=local/lift",
        f"output_dir={out}",
        "progress=false",
        f"steps={STEPS}",
        f"save_every={SAVE_EVERY}",
        *extra,
    ]


def _cfg(dataset, out, *extra) -> ActTrainConfig:
    return compose("train_act", _overrides(dataset, out, *extra), schema=ActTrainConfig)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("act") / "full"
    return train_act(_cfg(dataset, out)) | {"out": out}


def _live_obs(seeds, image_size=IMG):
    """A batched observation like the vector env's, from one env reset per seed."""
    import envs

    env = envs.make("svla/Lift-v0", image_size=image_size)
    obs = [env.reset(seed=s)[0] for s in seeds]
    env.close()
    return {
        "pixels": {c: np.stack([o["pixels"][c] for o in obs]) for c in obs[0]["pixels"]},  # [N, H, W, 3]
        "agent_pos": np.stack([o["agent_pos"] for o in obs]),  # [N, 9]
        "instruction": [o["instruction"] for o in obs],
    }


def test_train_act_logs_checkpoints_and_summary(run):
    out = run["out"]
    assert run["steps"] == STEPS and np.isfinite(run["final_loss"]) and run["wall_time_s"] > 0
    assert [h["step"] for h in run["history"]] == list(range(1, STEPS + 1))
    assert {"l1", "kld", "loss", "lr_backbone", "lr_rest"} <= set(run["history"][-1])
    lines = (out / "train_history.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, STEPS + 1))
    ckpt = Path(run["checkpoint"])
    assert ckpt == out / "checkpoints" / f"step_{STEPS:07d}"
    assert (out / "checkpoints" / "last").read_text().strip() == ckpt.name
    assert (ckpt / POLICY_TYPE_FILE).read_text() == "act"
    feats = json.loads((ckpt / "features.json").read_text())
    assert feats["cameras"] == ["front", "wrist"] and feats["state_dim"] == 9 and feats["action_dim"] == 4
    assert feats["image_shapes"]["front"] == [3, IMG, IMG]
    # the optimizer reaches every part of lerobot's ACT: ResNet and transformer moved between checkpoints
    mid = load_file(str(out / "checkpoints" / f"step_{SAVE_EVERY:07d}" / "model.safetensors"))
    end = load_file(str(ckpt / "model.safetensors"))
    for part in (
        "model.backbone.",
        "model.encoder.",
        "model.decoder.",
        "model.vae_encoder.",
        "model.action_head.",
    ):
        assert any(not torch.equal(mid[k], end[k]) for k in end if k.startswith(part)), part


def test_resume_after_kill_9_ends_with_the_same_weights(dataset, run, tmp_path, kill_at_first_checkpoint):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vla.baselines.act_cli", *_overrides(dataset, out)]
    killed_at = int(kill_at_first_checkpoint(cmd, out, REPO).split("_")[1])
    assert killed_at < STEPS, "the run finished before it could be killed; the test proves nothing"
    resumed = train_act(_cfg(dataset, out, "resume=true"))
    assert resumed["steps"] == STEPS and resumed["history"][0]["step"] == killed_at + 1
    a = load_file(str(Path(run["checkpoint"]) / "model.safetensors"))
    b = load_file(str(Path(resumed["checkpoint"]) / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_checkpoint_round_trip_gives_identical_actions(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path)
    ds = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    feats, stats = act_features(ds, cfg.policy), dataset_stats(ds, cfg.policy)
    torch.manual_seed(0)
    policy = ActPolicy.create(cfg.policy, feats, stats, "cpu").eval()
    ckpt = save_act_policy(policy, tmp_path / "ckpt")
    loaded = load_policy(ckpt)  # dispatches on policy_type.txt
    assert isinstance(loaded, ActPolicy)
    obs = _live_obs([100_000, 100_001])
    chunk = policy.predict_action_chunk(obs)
    assert chunk.shape == (2, cfg.policy.chunk_size, 4)
    torch.testing.assert_close(loaded.eval().predict_action_chunk(obs), chunk, rtol=0, atol=0)
    # actions come out in env units through the saved statistics: shifting the action mean shifts them
    shifted = {k: dict(v) for k, v in stats.items()}
    shifted["action"]["mean"] = [m + 1.0 for m in stats["action"]["mean"]]
    other = ActPolicy.create(cfg.policy, feats, shifted, "cpu").eval()
    other.load_state_dict(policy.state_dict())
    torch.testing.assert_close(other.predict_action_chunk(obs), chunk + 1.0, rtol=0, atol=1e-5)
    # select_action: [N, A] numpy from the queue, a new chunk after n_action_steps
    loaded.cfg.n_action_steps = 2
    first = [loaded.select_action(obs) for _ in range(2)]
    assert first[0].shape == (2, 4) and isinstance(first[0], np.ndarray)
    np.testing.assert_allclose(np.stack(first, 1), chunk[:, :2].numpy(), rtol=0, atol=0)


def test_dataset_frames_and_live_replay_give_the_same_model_inputs(dataset, tmp_path):
    """Parity: ACT's inputs built from recorded frames equal those built from replaying the same seed live."""
    import envs

    cfg = _cfg(dataset, tmp_path)
    ds = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    policy = ActPolicy.create(cfg.policy, act_features(ds, cfg.policy), dataset_stats(ds, cfg.policy), "cpu")
    seed = load_recording_info(dataset)["seeds"][0]
    env = envs.make("svla/Lift-v0", image_size=IMG)
    obs, _ = env.reset(seed=seed)
    worst, rotated = 0.0, []
    for t in range(int(ds.meta.episodes["length"][0])):
        item = ds[t]
        batch = {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}
        a = policy.model_inputs(policy._raw.raw_from_dataset(batch))
        b = policy.model_inputs(policy._raw.raw_from_env(obs))
        torch.testing.assert_close(a["observation.state"], b["observation.state"], rtol=0, atol=1e-5)
        for cam in ("front", "wrist"):
            key = f"observation.images.{cam}"
            assert a[key].shape == b[key].shape == (1, 3, IMG, IMG)
            # normalized by the dataset's per-channel std (~0.1-0.3): a few uint8 levels of AV1 error
            worst = max(worst, float((a[key] - b[key]).abs().mean()))
            rotated.append(float((a[key] - b[key].flip(-1, -2)).abs().mean()))  # what a wrong frame gives
        obs, *_ = env.step(item["action"][0].numpy())
    env.close()
    # measured: worst frame 0.087 (AV1 at 64 px)
    assert worst < 0.25, f"mean |normalized image| difference {worst:.3f} exceeds codec tolerance"
    assert worst < 0.5 * np.mean(rotated), "dataset frames are no closer to the live frames than rotated ones"


def test_svla_eval_rolls_out_an_act_checkpoint(dataset, run, tmp_path):
    overrides = [f"checkpoint={run['checkpoint']}", f"env.image_size={IMG}", "progress=false", "videos=0"]
    r = evaluate(
        compose(
            "eval",
            [*overrides, "episodes=2", "num_envs=2", f"output_dir={tmp_path / 'ev'}"],
            schema=EvalConfig,
        )
    )
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved["episodes"] == 2 and [x["seed"] for x in saved["records"]] == [100000, 100001]
    assert saved["success_rate"] == r["success_rate"] == sum(x["success"] for x in saved["records"]) / 2
    assert all(1 <= x["length"] <= 60 for x in saved["records"])
    m = saved["manifest"]
    assert "dim_model: 32" in m["policy_config"] and len(m["checkpoint_sha256"]) == 64
    assert m["dataset"] == str(dataset.resolve())  # dataset.json: the recording seeds were checked
    # cameras the env does not render, or a different image size: errors naming both sides
    with pytest.raises(
        CheckpointError, match=r"cameras \['front', 'wrist'\] vs env svla/Lift-v0 cameras \['front'\]"
    ):
        evaluate(
            compose(
                "eval", [*overrides, "episodes=1", "num_envs=1", "env.cameras=[front]"], schema=EvalConfig
            )
        )
    with pytest.raises(
        ValueError, match=r"gives images \(3, 32, 32\) but the ACT policy was trained on \(3, 64, 64\)"
    ):
        evaluate(
            compose(
                "eval",
                [
                    *overrides[:1],
                    "env.image_size=32",
                    "progress=false",
                    "videos=0",
                    "episodes=1",
                    "num_envs=1",
                ],
                schema=EvalConfig,
            )
        )


def test_clear_errors(dataset, tmp_path):
    with pytest.raises(DatasetError, match="svla-record"):
        train_act(ActTrainConfig(dataset=DatasetConfig(repo_id="local/x", root=str(tmp_path / "nope"))))
    with pytest.raises(DatasetError, match=r"policy.cameras=\['top'\] but dataset local/lift has cameras"):
        train_act(_cfg(dataset, tmp_path / "cams", "policy.cameras=[top]"))
    with pytest.raises(ValueError, match="n_action_steps=9"):
        ActPolicyConfig(chunk_size=8, n_action_steps=9)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / POLICY_TYPE_FILE).write_text("diffusion")
    with pytest.raises(CheckpointError, match="policy type 'diffusion'.*known types"):
        load_policy(bad)
    shutil.copytree(tmp_path / "bad", tmp_path / "half")
    (tmp_path / "half" / POLICY_TYPE_FILE).write_text("act")
    with pytest.raises(CheckpointError, match="not an ACT policy checkpoint: missing"):
        load_policy(tmp_path / "half")
