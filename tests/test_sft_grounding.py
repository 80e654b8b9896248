"""The SFT word-region alignment loss (`spatial_backbone.sft.grounding`): its ground truth matches the
simulator (MuJoCo's camera, the dataset's own 2D points and boxes), mentions name the right tokens, packing
keeps each mention on its own item's image tokens, the loss learns, and a resumed grounded run is exact."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from envs.hydra_utils import compose
from envs.scene import Scene, sample_scene_spec
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.io import load_split
from spatial_backbone.factory import build_backbone
from spatial_backbone.sft.config import SFTConfig, SFTGroundingConfig
from spatial_backbone.sft.grounding import camera_extrinsic, covered_cells, project
from spatial_backbone.sft.packing import PackedCollator, VisionSpec, dataset_fovy, encode_items
from spatial_backbone.sft.train import GroundedAnswerLoss, train


@pytest.fixture(scope="module")
def grounded(small_spatial_dataset):
    """(model, processor, train items, the items encoded with their mentions) of the small dataset."""
    model, processor = build_backbone(BackboneConfig())
    items = load_split(small_spatial_dataset, "train")
    return model, processor, items, encode_items(processor, items, small_spatial_dataset, mentions=True)


def _parsed(field):
    return json.loads(field) if isinstance(field, str) else field


def test_projection_equals_the_mujoco_camera():
    with Scene(
        sample_scene_spec(np.random.default_rng(0), n_objects=3, image_size=112), with_robot=False
    ) as scene:
        eye, target, fovy = (0.35, -0.45, 0.4), (0.02, 0.03, 0.0), 40.0
        scene.set_camera_pose("free", eye, target, fovy=fovy)
        cam = scene.camera("free", width=112, height=112)
        np.testing.assert_allclose(camera_extrinsic(eye, target), cam.extrinsic, atol=1e-6)
        points = np.stack([o.pos for o in scene.objects()])  # [N, 3]
        uv, z = project(points, {"eye": eye, "target": target, "fovy": None}, 112, 112, default_fovy=fovy)
        ref_uv, ref_z = scene.project(points, cam)
    np.testing.assert_allclose(uv, ref_uv, atol=1e-6)
    np.testing.assert_allclose(z, ref_z, atol=1e-9)


def test_covered_cells_hold_the_datasets_own_points_and_boxes(small_spatial_dataset, grounding_answers):
    """Every grounding item's answer (a 2D point, or a box's centre, from the rendered segmentation) falls in
    a token cell that the referred object's projected box covers: views, fields of view and cells agree."""
    fovy, answers = dataset_fovy(small_spatial_dataset), grounding_answers(small_spatial_dataset)
    for meta, obj, (u, v) in answers:
        cells = covered_cells(obj, meta["views"][0], (4, 4), 28, fovy)
        assert int(v // 28) * 4 + int(u // 28) in cells, (meta["scene"], (u, v), cells)
        assert len(cells) < 16, "a 5-10 cm object cannot cover the whole image"
    assert len(answers) >= 3, "the dataset has too few grounding items to test anything"


def test_mentions_point_at_object_names_and_their_image_tokens(small_spatial_dataset, grounded):
    _, processor, items, enc = grounded
    spec = VisionSpec.from_processor(processor)
    n = 0
    for it, e in zip(items, enc, strict=True):
        labels = [o["label"] for o in _parsed(it["meta"]).get("scene_objects", [])]
        n_image = int((e.input_ids[: e.n_prompt] == spec.image_token_id).sum())
        for m in e.mentions:
            said = processor.tokenizer.decode(e.input_ids[: m.query + 1].tolist()).lower()
            assert any(said.endswith(label) for label in labels), said[-40:]
            assert m.query < e.n_prompt and m.positives and max(m.positives) < n_image
            n += 1
    assert n >= 10, f"only {n} mentions in the test dataset"
    assert not any(e.mentions for e in encode_items(processor, items, small_spatial_dataset))  # only if asked


def test_packed_grounding_loss_is_the_mention_weighted_mean_of_each_items_own(grounded):
    model, processor, _, enc = grounded
    with_mentions = [e for e in enc if e.mentions][:4]
    collate = PackedCollator(VisionSpec.from_processor(processor), packed=True)
    loss = GroundedAnswerLoss(model, SFTGroundingConfig(weight=1.0)).eval()
    with torch.no_grad():
        packed = collate([with_mentions[:2], with_mentions[2:]])
        assert packed["stats"]["mentions"] == sum(len(e.mentions) for e in with_mentions)
        for t in packed["grounding"]:  # keys are image tokens of the row, the query a text token
            assert (
                packed["input_ids"][t["row"], t["keys"]]
                == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
            ).all()
        together = float(loss(packed)[2]["grounding"])
        alone = [float(loss(collate([[e]]))[2]["grounding"]) for e in with_mentions]
    weights = [len(e.mentions) for e in with_mentions]
    assert together == pytest.approx(np.average(alone, weights=weights), abs=1e-5)


def test_grounding_loss_learns_a_batch(grounded, descend):
    _, processor, _, enc = grounded
    model = build_backbone(BackboneConfig())[0]  # a fresh copy: the module fixture stays untouched
    batch = PackedCollator(VisionSpec.from_processor(processor), packed=True)(
        [[e] for e in enc if e.mentions][:4]
    )
    torch.manual_seed(0)  # the head's init
    loss = GroundedAnswerLoss(model, SFTGroundingConfig(weight=1.0))
    first, last = descend(lambda: loss(batch)[2]["grounding"], loss.parameters(), 60, 1e-3)
    assert last < 0.5 * first, (first, last)


def _cfg(dataset, out, *extra) -> SFTConfig:
    """A grounded `svla-sft` run on the small dataset, composed through hydra as the CLI does."""
    over = [f"data.dir={dataset}", f"output_dir={out}", "progress=false", "log_every=1", "packing.rows=2"]
    return compose("sft", [*over, "grounding.weight=1.0", *extra], schema=SFTConfig)


def test_grounded_run_logs_the_loss_and_resumes_exactly(small_spatial_dataset, tmp_path):
    dataset = small_spatial_dataset
    full = train(_cfg(dataset, tmp_path / "full", "steps=6", "save_every=3"))
    logged = [r["grounding"] for r in full["history"]]  # 0 for a batch that names no object
    assert all(np.isfinite(v) and v >= 0 for v in logged) and max(logged) > 0.5, logged
    half = train(_cfg(dataset, tmp_path / "cut", "steps=6", "save_every=3", "max_minutes=1e-9"))
    assert half["steps"] == 1  # stopped (and saved) after the first step
    resumed = train(_cfg(dataset, tmp_path / "cut", "steps=6", "save_every=3", "resume=true"))
    assert resumed["steps"] == 6
    a = load_file(str(Path(full["backbone"]) / "model.safetensors"))
    b = load_file(str(Path(resumed["backbone"]) / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    state = lambda run: torch.load(Path(run["checkpoint"]) / "training_state.pt", weights_only=False)  # noqa: E731
    for k, v in state(full)["grounding_head"].items():
        torch.testing.assert_close(v, state(resumed)["grounding_head"][k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match="grounding.layer=9"):
        train(_cfg(dataset, tmp_path / "bad", "steps=1", "grounding.layer=9"))
