"""svla-train and svla-eval on a small recorded dataset: resume after kill -9, NaN stop, two processes,
train/eval parity of model inputs, rollouts with a manifest, and clear errors for bad input."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_IMG as IMG
from conftest import tiny_train_overrides
from safetensors.torch import load_file

from envs.hydra_utils import compose
from envs.record import load_recording_info
from envs.tasks.language import RELATIONS
from vla.checkpoint import CheckpointError, load_policy
from vla.data import DatasetError, open_dataset
from vla.evaluate import EvalConfig, evaluate, rollout_diagnostics
from vla.stats import wilson_interval
from vla.train import NonFiniteLossError, train
from vla.train_config import DatasetConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dataset(tiny_lift_dataset):
    return tiny_lift_dataset


_train_overrides = tiny_train_overrides


def _train_cfg(dataset, out, *extra) -> TrainConfig:
    return compose("train", _train_overrides(dataset, out, *extra), schema=TrainConfig)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "head.safetensors")) | load_file(str(ckpt / "backbone" / "model.safetensors"))


def test_resume_after_kill_9_ends_with_the_same_weights(dataset, tmp_path, kill_at_first_checkpoint):
    steps = ["steps=24", "save_every=4"]
    full = train(_train_cfg(dataset, tmp_path / "full", *steps))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vla.train_cli", *_train_overrides(dataset, out, *steps)]
    killed_at = int(kill_at_first_checkpoint(cmd, out, REPO).split("_")[1])
    assert killed_at < 24, "the run finished before it could be killed; the test proves nothing"
    resumed = train(_train_cfg(dataset, out, *steps, "resume=true"))
    assert resumed["steps"] == 24
    a, b = _weights(Path(full["checkpoint"])), _weights(Path(resumed["checkpoint"]))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(dataset, tmp_path):
    cfg = _train_cfg(
        dataset,
        tmp_path / "nan",
        "steps=6",
        "save_every=1",
        "optim.lr_head=1e30",
        "optim.lr_language=1e30",
        "optim.lr_vision=1e30",
        "optim.grad_clip=0",
        "optim.warmup_steps=0",
    )
    with pytest.raises(NonFiniteLossError, match="Last good checkpoint: .*step_"):
        train(cfg)
    last = (tmp_path / "nan" / "checkpoints" / "last").read_text().strip()
    policy = load_policy(tmp_path / "nan" / "checkpoints" / last)
    assert all(torch.isfinite(p).all() for p in policy.parameters())


def test_lr_schedule_cosine_decays_constant_holds_and_a_bad_name_is_an_error(dataset, tmp_path):
    lrs = {}
    for schedule in ("cosine", "constant"):
        cfg = _train_cfg(
            dataset,
            tmp_path / schedule,
            "steps=6",
            "save_every=6",
            "log_every=1",
            "optim.warmup_steps=2",
            "optim.lr_head=1e-3",
            f"optim.schedule={schedule}",
        )
        lrs[schedule] = [h["lr_head"] for h in train(cfg)["history"]]  # after steps 1..6
    assert lrs["cosine"][:2] == lrs["constant"][:2] == pytest.approx([5e-4, 1e-3])  # the same linear warmup
    assert lrs["constant"][2:] == pytest.approx([1e-3] * 4)
    assert all(a > b for a, b in zip(lrs["cosine"][1:-1], lrs["cosine"][2:], strict=True))
    assert lrs["cosine"][-1] == 0.0
    with pytest.raises(ValueError, match="optim.schedule='linear'.*cosine"):
        _train_cfg(dataset, tmp_path / "x", "optim.schedule=linear")


def test_two_process_training(dataset, tmp_path, run_two_processes):
    args = ["-m", "vla.train_cli", *_train_overrides(dataset, tmp_path / "ddp", "steps=3", "save_every=3")]
    res = run_two_processes(args, REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "processes: 2" in res.stdout
    assert (tmp_path / "ddp" / "checkpoints" / "step_0000003" / "head.safetensors").is_file()


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="svla-record"):
        open_dataset(DatasetConfig(repo_id="local/x", root=str(tmp_path / "nope")), chunk=8)


def test_dataset_frames_and_live_replay_give_the_same_model_inputs(dataset, tmp_path):
    """Parity: inputs built from recorded frames equal inputs built from replaying the same seed live."""
    import envs
    from vla.policy import SpatialVLAPolicy

    ds = open_dataset(DatasetConfig(repo_id="local/lift", root=str(dataset)), chunk=8)
    from vla.normalize import select_stats

    policy = SpatialVLAPolicy(
        _train_cfg(dataset, tmp_path).policy, select_stats(ds.meta.stats, ("observation.state", "action"))
    )
    proc = policy.processor
    seed = load_recording_info(dataset)["seeds"][0]
    ep_len = int(ds.meta.episodes["length"][0])
    env = envs.make("svla/Lift-v0", image_size=IMG)
    obs, _ = env.reset(seed=seed)
    worst = 0.0
    for t in range(ep_len):
        item = ds[t]
        batch = {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}
        a = proc(proc.raw_from_dataset(batch))
        b = proc(proc.raw_from_env(obs))
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(
            a["mm_token_type_ids"], b["mm_token_type_ids"]
        )
        torch.testing.assert_close(a["state"], b["state"], rtol=0, atol=1e-5)
        # pixel_values are CLIP-normalized: 1/255 of a pixel is ~0.015; AV1 codec error is a few pixel levels
        worst = max(worst, float((a["pixel_values"] - b["pixel_values"]).abs().mean()))
        obs, *_ = env.step(item["action"][0].numpy())  # the recorded action at step t
    env.close()
    assert worst < 0.1, f"mean |pixel_values| difference {worst:.3f} exceeds codec tolerance"


def test_eval_writes_results_manifest_and_videos(dataset, tmp_path):
    run = train(_train_cfg(dataset, tmp_path / "tr", "steps=2", "save_every=2"))
    cfg = compose(
        "eval",
        [
            f"checkpoint={run['checkpoint']}",
            "episodes=3",
            "num_envs=2",
            "videos=1",
            f"output_dir={tmp_path / 'ev'}",
            f"env.image_size={IMG}",
            "progress=false",
        ],
        schema=EvalConfig,
    )
    r = evaluate(cfg)
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved["episodes"] == 3 and len(saved["records"]) == 3
    assert saved["success_rate"] == sum(x["success"] for x in saved["records"]) / 3
    lo, hi = saved["wilson95"]
    assert 0 <= lo <= saved["success_rate"] <= hi <= 1
    m = saved["manifest"]
    assert m["seeds"] == [100000, 100001, 100002] and m["episodes_per_task"] == 3
    assert len(m["checkpoint_sha256"]) == 64 and m["dataset"] == str(dataset.resolve())
    assert "commit" in m["git"] and m["versions"]["torch"]
    assert len(r["videos"]) == 1 and Path(r["videos"][0]).stat().st_size > 1000
    for rec in saved["records"]:  # the suite's rollout diagnostics, per episode and summed up
        assert rec["first_touch"] in ("target", "reference", "other", "none")
        assert rec["final_nearest"] in ("target", "reference", "other")
        assert rec["relation"] in (*RELATIONS, "color", "only")
    d = saved["diagnostics"]
    assert sum(v["episodes"] for v in d["success_by_relation"].values()) == 3
    # perception at rollout: cm between the policy's own target/goal and the true ones, every episode
    firsts = [rec["grounding_cm"]["target"]["first"] for rec in saved["records"]]
    assert all(0 < f < 100 for f in firsts)  # a tiny policy is off, but not by a metre
    assert d["grounding_cm"]["target"]["first_all"] == pytest.approx(np.mean(firsts), abs=0.01)
    assert d["failures"] == 3 - saved["successes"] and sum(d["first_touch_all"].values()) == pytest.approx(1)
    import av

    with av.open(r["videos"][0]) as c:
        assert sum(1 for _ in c.decode(video=0)) == saved["records"][0]["length"] + 1
    # the oracle-grounding diagnostic runs the same rollout with the true positions fed to the decoder
    ocfg = compose(
        "eval",
        [
            f"checkpoint={run['checkpoint']}",
            "episodes=1",
            "num_envs=1",
            "videos=0",
            "oracle_grounding=true",
            f"output_dir={tmp_path / 'oracle'}",
            f"env.image_size={IMG}",
            "progress=false",
        ],
        schema=EvalConfig,
    )
    oracle = evaluate(ocfg)
    assert oracle["episodes"] == 1 and "oracle_grounding: true" in oracle["manifest"]["eval_config"]
    # evaluation seeds must be disjoint from the recording seeds
    with pytest.raises(ValueError, match="overlap the recording seeds"):
        evaluate(
            compose(
                "eval",
                [
                    f"checkpoint={run['checkpoint']}",
                    "seed=0",
                    "episodes=2",
                    f"env.image_size={IMG}",
                    "progress=false",
                ],
                schema=EvalConfig,
            )
        )
    # a checkpoint whose cameras don't match the env names both sides
    with pytest.raises(
        CheckpointError, match=r"cameras \['front', 'wrist'\] vs env svla/Lift-v0 cameras \['front'\]"
    ):
        evaluate(
            compose(
                "eval",
                [
                    f"checkpoint={run['checkpoint']}",
                    "episodes=1",
                    "num_envs=1",
                    "env.cameras=[front]",
                    f"env.image_size={IMG}",
                    "progress=false",
                ],
                schema=EvalConfig,
            )
        )


def test_rollout_diagnostics_split_failures_by_the_object_they_went_for():
    records = [
        {"success": True, "first_touch": "target", "final_nearest": "target", "relation": "leftmost"},
        {"success": False, "first_touch": "other", "final_nearest": "other", "relation": "leftmost"},
        {"success": False, "first_touch": "other", "final_nearest": "target", "relation": "color"},
        {"success": False, "first_touch": "none", "final_nearest": "target", "relation": "leftmost"},
    ]
    d = rollout_diagnostics(records)
    assert d["failures"] == 3
    assert d["first_touch_all"] == {"target": 0.25, "reference": 0.0, "other": 0.5, "none": 0.25}
    assert d["first_touch_failed"] == pytest.approx(
        {"target": 0, "reference": 0, "other": 2 / 3, "none": 1 / 3}
    )
    assert d["final_nearest_failed"] == pytest.approx({"target": 2 / 3, "reference": 0, "other": 1 / 3})
    assert sum(d["final_nearest_all"].values()) == pytest.approx(1)
    assert d["success_by_relation"]["leftmost"] == {"successes": 1, "episodes": 3, "success_rate": 1 / 3}
    assert d["success_by_relation"]["color"]["success_rate"] == 0


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(50, 50)[1] == 1.0 and np.isclose(wilson_interval(50, 50)[0], 0.9287, atol=1e-4)


def test_lora_trains_only_adapters_and_survives_a_checkpoint(dataset, tmp_path):
    run = train(
        _train_cfg(
            dataset,
            tmp_path / "lora",
            "steps=3",
            "save_every=3",
            "policy.lora.enabled=true",
            "policy.lora.r=4",
        )
    )
    ckpt = Path(run["checkpoint"])
    head = load_file(str(ckpt / "head.safetensors"))
    lora_b = [v for k, v in head.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # adapters were trained
    base = load_file(str(ckpt / "backbone" / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in base)  # loads with plain from_pretrained
    from spatial_backbone.config import BackboneConfig
    from spatial_backbone.factory import build_backbone

    untouched, _ = build_backbone(BackboneConfig(image_size=56))
    saved, _ = build_backbone(BackboneConfig(name_or_path=str(ckpt / "backbone"), image_size=56))
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(saved.state_dict()[q], untouched.state_dict()[q])  # base weights frozen
    policy = load_policy(ckpt).eval()
    assert sum("lora_" in n for n, _ in policy.named_parameters()) > 0


def test_policy_cameras_missing_from_the_dataset_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(DatasetError, match=r"policy.cameras=\['top'\]"):
        train(_train_cfg(dataset, tmp_path / "cams", "steps=1", "policy.cameras=[top]"))


def test_init_from_starts_a_new_run_from_a_checkpoints_weights(dataset, tmp_path):
    first = Path(train(_train_cfg(dataset, tmp_path / "a", "steps=2", "save_every=2"))["checkpoint"])
    frozen = ["steps=1", "save_every=1", "optim.lr_head=0", "optim.lr_language=0", "optim.lr_vision=0"]
    fresh = _weights(Path(train(_train_cfg(dataset, tmp_path / "fresh", *frozen))["checkpoint"]))
    run = train(_train_cfg(dataset, tmp_path / "b", *frozen, f"init_from={first}"))
    assert run["steps"] == 1  # a new schedule, not a resume of the source run
    a, b = _weights(first), _weights(Path(run["checkpoint"]))
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], fresh[k]) for k in a)  # the source run moved away from the init
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_init_from_takes_this_runs_image_size(dataset, tmp_path):
    """A resolution change between stages (the ViT's 2D rotary positions carry across sizes) is honoured, not
    silently replaced by the checkpoint's size; the new checkpoint records and reloads the new size."""
    first = Path(train(_train_cfg(dataset, tmp_path / "a", "steps=1", "save_every=1"))["checkpoint"])
    larger = ["backbone.image_size=112", "backbone.min_image_size=112"]
    run = train(_train_cfg(dataset, tmp_path / "b", "steps=1", "save_every=1", f"init_from={first}", *larger))
    src, new = load_policy(first), load_policy(run["checkpoint"])
    assert new.cfg.backbone.image_size == 112 and new.cfg.backbone.min_image_size == 112
    obs = {
        "pixels": {c: np.zeros((IMG, IMG, 3), np.uint8) for c in new.cfg.cameras},
        "agent_pos": np.zeros(9, np.float32),
        "instruction": "lift the red cube",
    }

    def image_tokens(policy) -> int:
        ids = policy.processor(policy.processor.raw_from_env(obs))["input_ids"]
        return int((ids == policy.backbone.config.image_token_id).sum())

    cams = len(new.cfg.cameras)
    assert image_tokens(src) == 4 * cams  # 64 px -> 56 px: 2 x 2 merged tokens per camera
    assert image_tokens(new) == 16 * cams  # -> 112 px: 4 x 4


def test_init_from_a_mismatched_checkpoint_is_a_clear_error(dataset, tmp_path):
    first = Path(train(_train_cfg(dataset, tmp_path / "a", "steps=1", "save_every=1"))["checkpoint"])
    with pytest.raises(CheckpointError, match="has head 'l1_chunk'; this run asks for 'flow_matching'"):
        train(_train_cfg(dataset, tmp_path / "b", "steps=1", f"init_from={first}", "head=flow_matching"))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        train(
            _train_cfg(dataset, tmp_path / "c", "steps=1", f"init_from={first}", "head.kwargs.mlp_hidden=40")
        )
    with pytest.raises(CheckpointError, match="nope is not a policy checkpoint"):
        train(_train_cfg(dataset, tmp_path / "d", "steps=1", f"init_from={tmp_path / 'nope'}"))


def test_a_token_neck_joins_a_trained_policy_by_init_from_without_changing_its_actions(dataset, tmp_path):
    """`init_from` a checkpoint without a neck + `head.kwargs.token_neck=1`: the neck starts fresh as the
    identity, so before any update the new policy acts exactly as the checkpoint does."""
    first = Path(train(_train_cfg(dataset, tmp_path / "a", "steps=1", "save_every=1"))["checkpoint"])
    frozen = ["steps=1", "save_every=1", "optim.lr_head=0", "optim.lr_language=0", "optim.lr_vision=0"]
    run = train(
        _train_cfg(dataset, tmp_path / "b", *frozen, f"init_from={first}", "head.kwargs.token_neck=1")
    )
    src, new = load_policy(first).eval(), load_policy(run["checkpoint"]).eval()
    assert src.head.grounding.pointers.neck is None and new.head.grounding.pointers.neck is not None
    obs = {
        "pixels": {
            c: np.random.default_rng(0).integers(0, 255, (IMG, IMG, 3), np.uint8) for c in src.cfg.cameras
        },
        "agent_pos": np.linspace(-0.5, 0.5, 9).astype(np.float32),
        "instruction": "lift the red cube",
    }
    torch.testing.assert_close(new.predict_action_chunk(obs), src.predict_action_chunk(obs), rtol=0, atol=0)


def test_object_probe_trains_on_the_recording_and_joins_a_run_by_init_from(dataset, tmp_path):
    """`head.kwargs.object_attrs` trains on the recorded `privileged.objects` (its loss is logged), can be
    switched on when fine-tuning from a checkpoint without it (the probe starts fresh), and a dataset without
    the objects is a clear error before training starts."""
    first = Path(train(_train_cfg(dataset, tmp_path / "a", "steps=1", "save_every=1"))["checkpoint"])
    run = train(
        _train_cfg(
            dataset,
            tmp_path / "b",
            "steps=2",
            "save_every=2",
            f"init_from={first}",
            "head.kwargs.object_attrs=1.0",
        )
    )
    assert all(np.isfinite(h["obj_bce"]) for h in run["history"])
    assert any(
        k.startswith("head.grounding.obj_probe.")
        for k in load_file(str(Path(run["checkpoint"]) / "head.safetensors"))
    )
    # the same recording without the objects column: lerobot's info.json no longer lists it
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(dataset, bare)
    info = json.loads((bare / "meta" / "info.json").read_text())
    del info["features"]["privileged.objects"]
    (bare / "meta" / "info.json").write_text(json.dumps(info))
    import pyarrow.parquet as pq

    for f in (bare / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["privileged.objects"]), f)
    with pytest.raises(DatasetError, match="privileged.objects.*object_attrs=0"):
        train(_train_cfg(bare, tmp_path / "c", "steps=1", "head.kwargs.object_attrs=1.0"))


def test_perceive_stage_trains_backbone_and_probe_only_and_its_backbone_starts_an_act_run(dataset, tmp_path):
    """`objective=perceive` (perception pre-training): the loss is the object probe's alone, the backbone,
    the probe and the token mix it reads move while the action decoder, the queries and the 3D targets stay
    exactly as initialised; its checkpoint's backbone directory starts an act run by
    `backbone.name_or_path`. Misconfigurations fail before training with the fix."""
    perceive = ["objective=perceive", "head.kwargs.object_attrs=1.0", "head.kwargs.pointer_pos=true"]
    run = train(_train_cfg(dataset, tmp_path / "p", *perceive, "steps=3", "save_every=1"))
    assert all(set(h) >= {"obj_bce", "loss"} and "l1" not in h for h in run["history"])
    ckpts = tmp_path / "p" / "checkpoints"
    a, b = _weights(ckpts / "step_0000001"), _weights(ckpts / "step_0000003")
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    probe = ("head.grounding.obj_probe.", "head.grounding.pointers.mix.")
    assert any(k.startswith("model.visual.") for k in moved), "the vision tower did not train"
    assert any(k.startswith(probe) for k in moved), "the object probe did not train"
    head_moved = {k for k in moved if k in load_file(str(ckpts / "step_0000001" / "head.safetensors"))}
    assert head_moved and all(k.startswith(probe) for k in head_moved), sorted(head_moved)

    backbone = ckpts / "step_0000003" / "backbone"
    frozen = ["steps=1", "save_every=1", "optim.lr_head=0", "optim.lr_language=0", "optim.lr_vision=0"]
    act = train(_train_cfg(dataset, tmp_path / "a", *frozen, f"backbone.name_or_path={backbone}"))
    assert "l1" in act["history"][-1]
    got = load_file(str(Path(act["checkpoint"]) / "backbone" / "model.safetensors"))
    want = load_file(str(backbone / "model.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)

    with pytest.raises(ValueError, match="object_attrs=0.*object_attrs=1.0"):
        _train_cfg(dataset, tmp_path / "x", "objective=perceive")
    with pytest.raises(ValueError, match="motion_batch=8"):
        _train_cfg(dataset, tmp_path / "x", *perceive, "head.kwargs.motion=true", "motion_batch=8")
    with pytest.raises(ValueError, match="objective='percieve'"):
        _train_cfg(dataset, tmp_path / "x", "objective=percieve")
