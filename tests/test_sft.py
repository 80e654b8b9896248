"""svla-sft on a small generated dataset: packed loss and gradients equal unpacked ones, per-item 3D M-RoPE
positions, answer-only labels, resume after kill -9, NaN stop, and a tuned backbone that loads back."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from envs.hydra_utils import ConfigError, compose
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.io import load_images, load_split
from spatial_backbone.factory import build_backbone
from spatial_backbone.sft.config import PackingConfig, SFTConfig
from spatial_backbone.sft.packing import (
    IGNORE,
    BatchPlan,
    PackedCollator,
    VisionSpec,
    best_fit_decreasing,
    encode_items,
    mrope_positions,
    patchify,
    prompt_text,
)
from spatial_backbone.sft.train import AnswerLoss, NonFiniteLossError, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(small_spatial_dataset):
    return small_spatial_dataset


@pytest.fixture(scope="module")
def backbone():
    model, processor = build_backbone(BackboneConfig())
    model.train()
    return model, processor


@pytest.fixture(scope="module")
def encoded(dataset, backbone):
    items = load_split(dataset, "train")
    # several images per item (multi-view, video, ssrl) and single-image items, in file order
    return items, encode_items(backbone[1], items, dataset)


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _reference_loss(model, processor, root, items, encoded):
    """Mean answer-token loss of items run one at a time through the model's own forward (its own 3D M-RoPE
    positions from `mm_token_type_ids`, processor pixel values): the unpacked ground truth."""
    total, count = 0.0, 0
    for it, e in zip(items, encoded, strict=True):
        inputs = processor(
            images=load_images(root, it), text=[prompt_text(processor, it)], return_tensors="pt"
        )
        ids = torch.from_numpy(e.input_ids.astype(np.int64))[None]  # [1, L]
        mm = (ids == VisionSpec.from_processor(processor).image_token_id).int()  # [1, L]
        out = model(
            input_ids=ids,
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            mm_token_type_ids=mm,
        )
        logits = out.logits[0, e.n_prompt - 1 : len(e) - 1]  # [A, V]
        total = total + torch.nn.functional.cross_entropy(logits, ids[0, e.n_prompt :], reduction="sum")
        count += e.n_answer
    return total / count


def test_encoding_matches_the_processor_and_the_model_positions(dataset, backbone, encoded):
    model, processor = backbone
    spec = VisionSpec.from_processor(processor)
    items, enc = encoded
    multi = [k for k, it in enumerate(items) if len(it["images"]) > 1][:2]
    for k in [0, 1, *multi]:
        imgs = load_images(dataset, items[k])
        ref = processor(images=imgs, text=[prompt_text(processor, items[k])], return_tensors="pt")
        n = ref["input_ids"].shape[1]
        assert enc[k].n_prompt == n
        assert np.array_equal(enc[k].input_ids[:n], ref["input_ids"][0].numpy())
        pv, grid = patchify(imgs, spec)
        assert torch.equal(grid, ref["image_grid_thw"])
        torch.testing.assert_close(pv, ref["pixel_values"], rtol=0, atol=1e-5)
        ids = torch.from_numpy(enc[k].input_ids.astype(np.int64))[None]  # [1, L]
        pos, _ = model.model.get_rope_index(ids, (ids == spec.image_token_id).int(), image_grid_thw=grid)
        assert torch.equal(mrope_positions(enc[k], spec), pos[:, 0])


def test_packed_loss_and_gradients_equal_unpacked(dataset, backbone, encoded):
    model, processor = backbone
    items, enc = encoded
    chosen = [0, 1, 2, *[k for k, it in enumerate(items) if len(it["images"]) > 1][:3]]
    items, enc = [items[k] for k in chosen], [enc[k] for k in chosen]
    packed = PackedCollator(VisionSpec.from_processor(processor), packed=True)([enc[:2], enc[2:]])
    assert packed["input_ids"].shape[0] == 2
    model.zero_grad(set_to_none=True)
    loss_sum, n = AnswerLoss(model)(packed)
    (loss_sum / n).backward()
    packed_loss, packed_grads = float((loss_sum / n).detach()), _grads(model)
    model.zero_grad(set_to_none=True)
    ref = _reference_loss(model, processor, dataset, items, enc)
    ref.backward()
    ref_grads = _grads(model)
    assert int(n) == sum(e.n_answer for e in enc)
    assert abs(packed_loss - float(ref.detach())) < 1e-5
    assert packed_grads.keys() == ref_grads.keys()
    for k in ref_grads:
        torch.testing.assert_close(packed_grads[k], ref_grads[k], rtol=1e-4, atol=1e-5, msg=k)


def test_attention_is_isolated_between_packed_items(backbone, encoded):
    model, processor = backbone
    _, enc = encoded
    collate = PackedCollator(VisionSpec.from_processor(processor), packed=True)
    with torch.no_grad():
        alone = AnswerLoss(model)(collate([[enc[1]]]))[0]
        batch = collate([[enc[0], enc[1]]])
        batch["labels"][0, : len(enc[0])] = IGNORE  # score only the second item
        after = AnswerLoss(model)(batch)[0]
        spec = VisionSpec.from_processor(processor)
        last_image = int(np.flatnonzero(enc[0].input_ids == spec.image_token_id)[-1])
        batch["input_ids"][0, last_image + 2 : enc[0].n_prompt - 5] = 100  # scramble the first question
        scrambled = AnswerLoss(model)(batch)[0]
    torch.testing.assert_close(after, alone, rtol=0, atol=1e-4)
    torch.testing.assert_close(scrambled, alone, rtol=0, atol=1e-4)


def test_positions_restart_per_item_and_are_3d_for_image_tokens(backbone, encoded):
    _, processor = backbone
    spec = VisionSpec.from_processor(processor)
    _, enc = encoded
    row = enc[:3]
    batch = PackedCollator(spec, packed=True)([row, enc[3:4]])
    pos, ids = batch["position_ids"], batch["input_ids"]  # [4, B, S], [B, S]
    assert pos.shape == (4, 2, ids.shape[1]) and batch["attention_mask"] is None
    col = 0
    for e in row:
        n = len(e)
        assert torch.equal(pos[0, 0, col : col + n], torch.arange(n))  # text positions restart per item
        assert torch.equal(pos[1:, 0, col : col + n], mrope_positions(e, spec))
        assert pos[1:, 0, col].tolist() == [0, 0, 0]
        img = ids[0, col : col + n] == spec.image_token_id
        assert img.any()
        p3 = pos[1:, 0, col : col + n][:, img]  # [3, n_img]
        assert len(set(p3[1].tolist())) > 1 and len(set(p3[2].tolist())) > 1  # rows and columns differ
        assert not torch.equal(p3[1], p3[2])  # height and width are distinct axes: 3D, not 1D
        txt = pos[1:, 0, col : col + n][:, ~img]
        assert torch.equal(txt[0], txt[1]) and torch.equal(txt[1], txt[2])  # text: the same on all axes
        col += n


def test_labels_are_ignored_except_answer_tokens(backbone, encoded):
    _, processor = backbone
    items, enc = encoded
    batch = PackedCollator(VisionSpec.from_processor(processor), packed=True)([enc[:3]])
    labels, col = batch["labels"][0], 0
    tok = processor.tokenizer
    for it, e in zip(items[:3], enc[:3], strict=True):
        seg = labels[col : col + len(e)]
        assert (seg[: e.n_prompt] == IGNORE).all()
        answer = seg[e.n_prompt :]
        assert (answer != IGNORE).all()
        assert tok.decode(answer) == it["answer"] + "<|im_end|>"
        col += len(e)
    assert (labels[col:] == IGNORE).all()


def test_pack_plan_is_deterministic_tight_and_complete():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(60, 500, size=300)]
    packing = PackingConfig(max_length=1024, window=300)
    bins = best_fit_decreasing(lengths, 1024)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 1024 for b in bins)
    assert 1 - sum(lengths) / (1024 * len(bins)) < 0.05
    plan_a, plan_b = BatchPlan(lengths, [1.0] * 300, packing, 3), BatchPlan(lengths, [1.0] * 300, packing, 3)
    assert plan_a.epoch(0) == plan_b.epoch(0) and plan_a.epoch(1) != plan_a.epoch(0)
    a, b = plan_a.batches(4), plan_b.batches(4, start=5)
    first = [next(a) for _ in range(8)]
    assert first[5:] == [next(b) for _ in range(3)]  # resuming at batch 5 continues the same order
    weights = [0.0] * 150 + [2.0] * 150
    epoch = sorted(i for row in BatchPlan(lengths, weights, packing, 0).epoch(0) for i in row)
    assert epoch == sorted(list(range(150, 300)) * 2)


def _overrides(dataset, out, *extra):
    return [
        f"data.dir={dataset}",
        f"output_dir={out}",
        "progress=false",
        "packing.max_length=768",
        "packing.rows=2",
        "optim.warmup_steps=2",
        "log_every=1",
        *extra,
    ]


def _cfg(dataset, out, *extra) -> SFTConfig:
    return compose("sft", _overrides(dataset, out, *extra), schema=SFTConfig)


def test_resume_after_kill_9_ends_with_the_same_weights_and_loads(
    dataset, tmp_path, kill_at_first_checkpoint
):
    steps = ["steps=12", "save_every=3"]
    full = train(_cfg(dataset, tmp_path / "full", *steps))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "spatial_backbone.sft.cli", *_overrides(dataset, out, *steps)]
    cmd.append(f"hydra.run.dir={tmp_path / 'hydra'}")
    killed_at = int(kill_at_first_checkpoint(cmd, out, REPO).split("_")[1])
    assert killed_at < 12, "the run finished before it could be killed; the test proves nothing"
    resumed = train(_cfg(dataset, out, *steps, "resume=true"))
    assert resumed["steps"] == 12
    a = load_file(str(Path(full["backbone"]) / "model.safetensors"))
    b = load_file(str(Path(resumed["backbone"]) / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # the output directory is a backbone: the factory loads it, with the tuned weights
    model, processor = build_backbone(BackboneConfig(name_or_path=resumed["backbone"]))
    for k, v in model.state_dict().items():
        if k in a:
            torch.testing.assert_close(v, a[k], rtol=0, atol=0, msg=k)
    assert full["history"][-1]["loss"] < full["history"][0]["loss"]


def test_two_processes_train_and_stop_together_when_time_runs_out(dataset, tmp_path, run_two_processes):
    """Two CPU processes (DESIGN.md section 6) share each step's rows; `max_minutes` runs out during step 1,
    and both processes must agree on it (one stopping alone would hang the other in the next all-reduce)."""
    out = tmp_path / "ddp"
    args = [
        "-m",
        "spatial_backbone.sft.cli",
        *_overrides(dataset, out, "steps=6", "save_every=6", "max_minutes=1e-6"),
    ]
    res = run_two_processes([*args, f"hydra.run.dir={tmp_path / 'hydra'}"], REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "processes: 2" in res.stdout
    assert "reached at step 1: stopping early" in res.stdout
    assert (out / "checkpoints" / "last").read_text().strip().endswith("step_0000001")
    build_backbone(BackboneConfig(name_or_path=str(out / "backbone")))  # the tuned backbone loads


DISAGREEING = """
import time
import torch
from accelerate import Accelerator
from spatial_backbone.processes import loss_is_finite, out_of_time
acc = Accelerator(cpu=True)
r = acc.process_index
started = time.perf_counter() - (120.0 if r == 0 else 0.0)  # rank 0 has run 2 min longer
loss = torch.tensor(float("nan") if r == 1 else 0.5)  # rank 1 alone has a NaN loss
answer = f"out of time {out_of_time(acc, started, 1.0)}, finite {loss_is_finite(acc, loss)}"
with open(f"rank{r}.txt", "w") as f:  # a file each: two ranks printing at once interleave their lines
    f.write(answer)
acc.wait_for_everyone()  # leave together: a rank exiting while gloo still serves the other can abort
torch.distributed.destroy_process_group()
"""


def test_processes_that_disagree_on_stopping_all_stop(tmp_path, run_two_processes):
    """A process that left the loop alone (its clock ran out a step early, or only its loss was NaN) would
    hang the others in the next gradient all-reduce: both decisions are taken together."""
    script = tmp_path / "disagree.py"
    script.write_text(DISAGREEING)
    res = run_two_processes([str(script)], tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "out of time True, finite False", rank


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(dataset, tmp_path):
    cfg = _cfg(
        dataset,
        tmp_path / "nan",
        "steps=8",
        "save_every=1",
        "optim.lr_language=1e30",
        "optim.lr_vision=1e30",
        "optim.lr_merger=1e30",
        "optim.grad_clip=0",
        "optim.warmup_steps=0",
    )
    with pytest.raises(NonFiniteLossError, match="Last good checkpoint: .*step_"):
        train(cfg)
    last = (tmp_path / "nan" / "checkpoints" / "last").read_text().strip()
    model, _ = build_backbone(BackboneConfig(name_or_path=str(tmp_path / "nan" / "checkpoints" / last)))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_values_are_quoted(dataset, tmp_path):
    with pytest.raises(ConfigError, match="packing.mode='tight'"):
        _cfg(dataset, tmp_path, "packing.mode=tight")
    with pytest.raises(ConfigError, match="steps=0"):
        _cfg(dataset, tmp_path, "steps=0")
    with pytest.raises(ValueError, match="not_a_skill"):
        train(_cfg(dataset, tmp_path, "data.skills=[not_a_skill]"))
