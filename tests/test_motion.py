"""The motion decoder (`head.kwargs.motion=true`) and its image-free training frames (`motion_batch=N`):
chunks equal lerobot's, sampling is resumable, the decoder reads true positions only in training and under
the oracle, the extra frames train it without touching the backbone, and bad setups are clear errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_train_overrides
from safetensors.torch import load_file

from envs.hydra_utils import compose
from envs.record import PRIVILEGED_KEY
from envs.tasks.base import PRIVILEGED_NAMES
from vla.config import HeadConfig, PolicyConfig
from vla.data import open_dataset
from vla.motion_data import MOTION_KEY, MotionFrames, with_motion
from vla.policy import SpatialVLAPolicy
from vla.train import train
from vla.train_config import DatasetConfig, TrainConfig

S, A, H, B = 9, 4, 8, 3
N_PRIV = len(PRIVILEGED_NAMES)
STATS = {
    "observation.state": {"mean": [0.1] * S, "std": [0.5] * S},
    "action": {"mean": [0.0] * A, "std": [0.5] * A},
    PRIVILEGED_KEY: {"mean": [0.0] * N_PRIV, "std": [0.1] * N_PRIV},
}
TASKS = ["pick up the cube", "put the leftmost cube on the plate", "touch the ball closest to the bin"]


def _policy(**kwargs) -> SpatialVLAPolicy:
    torch.manual_seed(0)
    head = HeadConfig(name="l1_chunk", kwargs={"motion": True, **kwargs})
    return SpatialVLAPolicy(PolicyConfig(head=head), STATS)


def _priv(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, N_PRIV, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def _batch(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.images.front": torch.rand(B, 3, 112, 112, generator=g),
        "observation.images.wrist": torch.rand(B, 3, 112, 112, generator=g),
        "observation.state": torch.randn(B, S, generator=g),
        "task": TASKS,
        "action": torch.randn(B, H, A, generator=g).clamp(-1, 1),
        "action_is_pad": torch.tensor([[False] * H, [False] * (H - 2) + [True] * 2, [False] * H]),
        PRIVILEGED_KEY: _priv(B, seed + 1),
    }


def _motion_batch(n=32, seed=5) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": torch.randn(n, S, generator=g),
        PRIVILEGED_KEY: _priv(n, seed + 1),
        "action": torch.randn(n, H, A, generator=g).clamp(-1, 1),
        "action_is_pad": torch.zeros(n, H, dtype=torch.bool),
        "task": [TASKS[i % 3] for i in range(n)],
    }


def _obs(priv: np.ndarray | None = None) -> dict:
    rng = np.random.default_rng(0)
    obs = {
        "pixels": {c: rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8) for c in ("front", "wrist")},
        "agent_pos": rng.normal(size=(2, S)).astype(np.float32),
        "instruction": TASKS[:2],
    }
    return obs if priv is None else obs | {"privileged_state": priv}


def test_motion_frames_equal_lerobots_action_chunks(tiny_lift_dataset):
    """Every frame's chunk, padding mask, state, privileged state and instruction equal what lerobot's
    `delta_timestamps` loader returns for that frame (episode ends included)."""
    ds = open_dataset(DatasetConfig(repo_id="local/lift", root=str(tiny_lift_dataset)), H)
    frames = MotionFrames(ds, H)
    assert len(frames) == len(ds)
    ends = np.flatnonzero(np.diff(np.asarray(ds.hf_dataset["episode_index"]))).tolist()
    for i in sorted({0, 1, len(ds) - 1, *ends, *[e + 1 for e in ends], *[e - 3 for e in ends]}):
        item = ds[i]
        torch.testing.assert_close(frames.actions[i], item["action"], rtol=0, atol=0)
        assert torch.equal(frames.is_pad[i], item["action_is_pad"]), i
        torch.testing.assert_close(frames.state[i], item["observation.state"], rtol=0, atol=0)
        torch.testing.assert_close(frames.privileged[i], item[PRIVILEGED_KEY], rtol=0, atol=0)
        assert frames.task_names[int(frames.task[i])] == item["task"]
    assert frames.is_pad[ends[0]].tolist() == [False] + [True] * (H - 1)  # last frame of episode 0


def test_motion_batches_are_a_pure_function_of_seed_process_and_step(tiny_lift_dataset):
    ds = open_dataset(DatasetConfig(repo_id="local/lift", root=str(tiny_lift_dataset)), H)
    frames = MotionFrames(ds, H)
    loader = [{"i": k} for k in range(5)]
    full = [b[MOTION_KEY] for b in with_motion(loader, frames, 6, seed=3, start=0)]
    resumed = [b[MOTION_KEY] for b in with_motion(loader[:2], frames, 6, seed=3, start=3)]
    for a, b in zip(full[3:], resumed, strict=True):
        assert torch.equal(a["action"], b["action"]) and a["task"] == b["task"]
    other = next(iter(with_motion(loader, frames, 6, seed=3, start=0, rank=1)))[MOTION_KEY]
    assert not torch.equal(other["observation.state"], full[0]["observation.state"])  # processes differ
    assert not torch.equal(full[0]["observation.state"], full[1]["observation.state"])  # steps differ


def test_motion_decoder_reads_true_positions_in_training_and_its_own_predictions_at_rollout():
    policy = _policy()
    head = policy.head
    assert head.mlp is None and head.state_proj is None
    batch = _batch()
    loss, metrics = policy(batch)
    inputs = policy.processor(policy.processor.raw_from_dataset(batch))
    feats = policy._features(inputs)
    true = head.motion_chunk(inputs["state"], inputs["aux"]["xyz"], feats.instruction, feats.instruction_mask)
    keep = (~inputs["action_is_pad"]).float()
    l1 = (((true - inputs["actions"]).abs().mean(-1)) * keep).sum() / keep.sum()
    assert metrics["l1"] == pytest.approx(float(l1), rel=1e-5)  # the batch's chunk loss is on TRUE positions
    assert float(loss) == pytest.approx(metrics["l1"] + metrics["aux_l1"] + metrics["uv_l1"], rel=1e-5)

    policy.eval()
    obs_inputs = policy.processor(policy.processor.raw_from_env(_obs()))
    feats = policy._features(obs_inputs)
    q = head.mix(feats.queries)
    pred, _ = head.grounding(q[:, 0], feats, head.keypoints(q, feats)[:, 0], state=obs_inputs["state"])
    own = head.motion_chunk(obs_inputs["state"], pred["xyz"], feats.instruction, feats.instruction_mask)
    chunk = policy.predict_action_chunk(_obs())
    torch.testing.assert_close(chunk, policy.action_norm.inverse(own))  # rollout: its own 3D predictions
    priv = [np.random.default_rng(s).uniform(-0.8, 0.8, (2, N_PRIV)).astype(np.float32) for s in (1, 2)]
    assert torch.equal(policy.predict_action_chunk(_obs(priv[0])), chunk)  # never read unless asked
    policy.oracle_grounding = True
    a, b = policy.predict_action_chunk(_obs(priv[0])), policy.predict_action_chunk(_obs(priv[1]))
    assert not torch.allclose(a, chunk) and not torch.allclose(a, b)  # the oracle's positions drive it


def test_image_free_frames_train_only_the_motion_decoder_and_lower_its_loss():
    policy = _policy()
    motion = _motion_batch()
    loss, metrics = policy(_batch() | {MOTION_KEY: motion})
    total = metrics["l1"] + metrics["aux_l1"] + metrics["uv_l1"] + metrics["motion_l1"]
    assert float(loss) == pytest.approx(total, rel=1e-5)

    m_loss, _ = policy._motion_loss(motion)
    policy.zero_grad()
    m_loss.backward()
    moved = {n for n, p in policy.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert moved and all(n.startswith("head.motion.") for n in moved), sorted(moved)[:5]

    opt = torch.optim.AdamW(policy.head.motion.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        m_loss, m = policy._motion_loss(motion)
        first = first if first is not None else m["motion_l1"]
        opt.zero_grad()
        m_loss.backward()
        opt.step()
    assert m["motion_l1"] < 0.6 * first


def test_motion_setups_that_cannot_work_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="motion=true reads the grounding head's 3D positions"):
        torch.manual_seed(0)
        SpatialVLAPolicy(
            PolicyConfig(head=HeadConfig(name="l1_chunk", kwargs={"motion": True})),
            {k: v for k, v in STATS.items() if k != PRIVILEGED_KEY},
        )
    with pytest.raises(ValueError, match="motion_batch=8 trains the motion decoder"):
        TrainConfig(motion_batch=8)
    with pytest.raises(ValueError, match="motion_batch=-1 must be >= 0"):
        TrainConfig(motion_batch=-1)
    torch.manual_seed(0)
    plain = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name="l1_chunk")), STATS)
    with pytest.raises(ValueError, match="has no motion decoder"):
        plain(_batch() | {MOTION_KEY: _motion_batch()})


def _cfg(dataset, out, *extra) -> TrainConfig:
    return compose("train", tiny_train_overrides(dataset, out, *extra), schema=TrainConfig)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "head.safetensors")) | load_file(str(ckpt / "backbone" / "model.safetensors"))


def test_svla_train_with_motion_frames_resumes_exactly_and_inits_from_a_plain_checkpoint(
    tiny_lift_dataset, tmp_path
):
    motion = ["head.kwargs.motion=true", "motion_batch=16", "steps=4", "save_every=2"]
    full = train(_cfg(tiny_lift_dataset, tmp_path / "full", *motion))
    assert all("motion_l1" in h for h in full["history"])
    # resume from the step-2 checkpoint of a copy: the same motion frames are drawn for steps 3-4
    out = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full", out)
    shutil.rmtree(out / "checkpoints" / "step_0000004")
    (out / "checkpoints" / "last").write_text("step_0000002")
    (out / "train_history.jsonl").unlink()
    resumed = train(_cfg(tiny_lift_dataset, out, *motion, "resume=true"))
    a, b = _weights(Path(full["checkpoint"])), _weights(Path(resumed["checkpoint"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)

    # a plain l1_chunk checkpoint starts a motion run: perception carries over, the decoder is new
    plain = Path(train(_cfg(tiny_lift_dataset, tmp_path / "plain", "steps=1", "save_every=1"))["checkpoint"])
    frozen = ["steps=1", "save_every=1", "optim.lr_head=0", "optim.lr_language=0", "optim.lr_vision=0"]
    run = train(_cfg(tiny_lift_dataset, tmp_path / "m", *frozen, *motion[:2], f"init_from={plain}"))
    src, new = _weights(plain), _weights(Path(run["checkpoint"]))
    assert any(k.startswith("head.motion.") for k in new) and not any(k.startswith("head.mlp.") for k in new)
    for k in new:
        if not k.startswith("head.motion."):
            torch.testing.assert_close(new[k], src[k], rtol=0, atol=0, msg=k)
