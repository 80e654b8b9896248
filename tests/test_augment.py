"""Train-time image augmentation (`vla.augment`): shapes and range, identity when off, seeded determinism,
the grounding (u, v) targets follow the image, and svla-train with `augment.enabled=true` (runs, resumes
exactly)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_train_overrides
from safetensors.torch import load_file

from envs.hydra_utils import compose
from envs.tasks.base import (
    OBJECT_FIELDS,
    OBJECT_SLOTS,
    OUT_OF_VIEW,
    PRIVILEGED_NAMES,
    object_uv_index,
    privileged_uv_index,
)
from vla.augment import AugmentConfig, augment
from vla.config import PolicyConfig
from vla.policy import SpatialVLAPolicy
from vla.processor import RawObservation
from vla.train import train
from vla.train_config import TrainConfig

B, HW = 16, 64
CAMS = ("front", "wrist")
ON = AugmentConfig(enabled=True, shift_px=4, crop_scale=0.9)


def _raw(seed=0, b=B, h=HW, w=HW) -> RawObservation:
    g = torch.Generator().manual_seed(seed)
    images = {c: torch.rand(b, 3, h, w, generator=g) for c in CAMS}
    privileged = torch.rand(b, len(PRIVILEGED_NAMES), generator=g) * 1.6 - 0.8  # [B, 14], uv in view
    return RawObservation(images, torch.zeros(b, 9), ["lift the cube"] * b, privileged=privileged)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_shapes_dtype_range_and_input_unchanged():
    raw = _raw()
    before = {c: raw.images[c].clone() for c in CAMS}, raw.privileged.clone()
    out = augment(raw, ON, _gen(0))
    for c in CAMS:
        assert out.images[c].shape == raw.images[c].shape and out.images[c].dtype == torch.float32
        assert out.images[c].min() >= 0.0 and out.images[c].max() <= 1.0
        assert not torch.equal(out.images[c], raw.images[c])
        assert torch.equal(raw.images[c], before[0][c])  # the input is not modified in place
    assert torch.equal(raw.privileged, before[1])
    assert out.privileged.shape == raw.privileged.shape
    torch.testing.assert_close(out.privileged[:, :6], raw.privileged[:, :6], rtol=0, atol=0)  # 3D unchanged


def test_disabled_is_the_identity():
    raw = _raw()
    out = augment(raw, AugmentConfig(enabled=False), _gen(0))
    for c in CAMS:
        assert torch.equal(out.images[c], raw.images[c])
    assert torch.equal(out.privileged, raw.privileged)


def test_integer_shift_copies_pixels_exactly():
    raw = _raw(b=4)
    out = augment(raw, AugmentConfig(enabled=True, shift_px=4), _gen(3))
    img, aug = raw.images["front"], out.images["front"]
    n = HW - 16
    for i in range(4):  # the interior of the output is an exact (up to float rounding) shift of the input
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.allclose(aug[i, :, 8:-8, 8:-8], img[i, :, 8 + dy :, 8 + dx :][:, :n, :n], atol=1e-5)
        ]
        assert len(found) == 1, found


def test_same_seed_same_output_different_seed_different():
    raw = _raw()
    a, b, c = augment(raw, ON, _gen(1)), augment(raw, ON, _gen(1)), augment(raw, ON, _gen(2))
    for cam in CAMS:
        assert torch.equal(a.images[cam], b.images[cam])
        assert not torch.equal(a.images[cam], c.images[cam])
    assert torch.equal(a.privileged, b.privileged) and not torch.equal(a.privileged, c.privileged)


def test_global_rng_is_used_without_a_generator():
    raw = _raw()
    torch.manual_seed(5)
    a = augment(raw, ON)
    torch.manual_seed(5)
    b = augment(raw, ON)
    assert torch.equal(a.images["front"], b.images["front"])


def _bright_pixel_batch(cfg_seed: int, b: int = B):
    """One bright pixel per image at a random interior position; its (u, v) in the privileged columns."""
    g = _gen(100 + cfg_seed)
    raw = _raw(b=b)
    for c in CAMS:
        raw.images[c].zero_()
        rows = torch.randint(12, HW - 12, (b,), generator=g)
        cols = torch.randint(12, HW - 12, (b,), generator=g)
        raw.images[c][torch.arange(b), :, rows, cols] = 1.0
        i = privileged_uv_index("target", c)
        raw.privileged[:, i] = (cols + 0.5) / HW * 2 - 1  # pixel centre, scene.project's convention
        raw.privileged[:, i + 1] = (rows + 0.5) / HW * 2 - 1
    # the same point as object slot 3 of the objects state (other slots: zeros, absent)
    raw.objects = torch.zeros(b, OBJECT_SLOTS * len(OBJECT_FIELDS))
    for c in CAMS:
        i, j = privileged_uv_index("target", c), object_uv_index(3, c)
        raw.objects[:, j : j + 2] = raw.privileged[:, i : i + 2]
    return raw


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(enabled=True, shift_px=4),
        AugmentConfig(enabled=True, shift_px=0, crop_scale=0.85),
        AugmentConfig(enabled=True, shift_px=4, crop_scale=0.9),
    ],
    ids=["shift", "crop", "shift+crop"],
)
def test_transformed_uv_points_at_the_bright_pixel(cfg):
    raw = _bright_pixel_batch(cfg.shift_px)
    out = augment(raw, cfg, _gen(7))
    moved = 0
    for c in CAMS:
        i = privileged_uv_index("target", c)
        uv = out.privileged[:, i : i + 2]  # [B, 2]
        assert (uv.abs() <= 1).all(), "interior points must stay in view"
        px = (uv + 1) / 2 * HW - 0.5  # [B, 2] (col, row) of the pixel centre
        flat = out.images[c][:, 0].flatten(1).argmax(1)  # [B]
        found = torch.stack([flat % HW, flat // HW], dim=1).float()  # [B, 2] (col, row)
        err = (found - px).abs().max()
        assert err <= 1.0, f"{c}: bright pixel {err:.2f} px from the transformed target"
        moved += int((uv != raw.privileged[:, i : i + 2]).any(1).sum())
        j = object_uv_index(3, c)
        torch.testing.assert_close(out.objects[:, j : j + 2], uv, rtol=0, atol=0)  # objects move with it
    assert moved > B, "the targets should have moved with the images"


def test_cameras_are_augmented_independently():
    raw = _raw()
    raw.images["wrist"] = raw.images["front"].clone()
    out = augment(raw, AugmentConfig(enabled=True, shift_px=4), _gen(0))
    assert not torch.equal(out.images["front"], out.images["wrist"])


def test_out_of_view_points_stay_as_they_are():
    raw = _raw()
    i, j = privileged_uv_index("goal", "front"), privileged_uv_index("target", "wrist")
    raw.privileged[:, i : i + 2] = OUT_OF_VIEW
    raw.privileged[:, j] = 1.5  # in front of the camera but outside the image
    out = augment(raw, ON, _gen(0))
    assert (out.privileged[:, i : i + 2] == OUT_OF_VIEW).all()
    assert torch.equal(out.privileged[:, j : j + 2], raw.privileged[:, j : j + 2])
    k = privileged_uv_index("target", "front")  # an in-view point does move
    assert not torch.equal(out.privileged[:, k : k + 2], raw.privileged[:, k : k + 2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shift_px": -1}, "shift_px=-1"),
        ({"crop_scale": 1.5}, "crop_scale=1.5"),
        ({"crop_scale": 0.0}, "crop_scale=0.0"),
        ({"enabled": True, "shift_px": 0}, "changes nothing"),
    ],
)
def test_bad_values_are_quoted(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_shift_too_large_for_the_image_is_an_error():
    with pytest.raises(ValueError, match="shift_px=40 is too large for 64x64"):
        augment(_raw(b=2), AugmentConfig(enabled=True, shift_px=40), _gen(0))


def test_train_yaml_default_is_off():
    cfg = compose("train", [], schema=TrainConfig)
    assert cfg.augment.enabled is False
    assert compose("train", ["augment.enabled=true"], schema=TrainConfig).augment.enabled is True


# -- svla-train with augmentation on the tiny recorded dataset -----------------------------------------------
@pytest.fixture
def dataset(tiny_lift_dataset):
    return tiny_lift_dataset


def _cfg(dataset, out, *extra) -> TrainConfig:
    overrides = tiny_train_overrides(
        dataset, out, "optim.warmup_steps=1", "augment.enabled=true", "augment.crop_scale=0.9", *extra
    )
    return compose("train", overrides, schema=TrainConfig)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "head.safetensors")) | load_file(str(ckpt / "backbone" / "model.safetensors"))


def test_svla_train_with_augmentation_runs_and_resumes_with_the_same_augmentations(dataset, tmp_path):
    full = train(_cfg(dataset, tmp_path / "full", "steps=4", "save_every=2"))
    assert full["steps"] == 4 and all(torch.isfinite(torch.tensor(h["loss"])) for h in full["history"])
    # resume from step 2 of a copy: the RNG state saved with the checkpoint must reproduce steps 3-4 exactly
    out = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full", out)
    shutil.rmtree(out / "checkpoints" / "step_0000004")
    (out / "checkpoints" / "last").write_text("step_0000002")
    resumed = train(_cfg(dataset, out, "steps=4", "save_every=2", "resume=true"))
    a, b = _weights(Path(full["checkpoint"])), _weights(Path(resumed["checkpoint"]))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # and the augmentation matters: without it, the same 4 steps end elsewhere
    plain = train(_cfg(dataset, tmp_path / "plain", "steps=4", "save_every=4", "augment.enabled=false"))
    c = _weights(Path(plain["checkpoint"]))
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)


def test_only_train_mode_forward_augments():
    """The policy applies its `train_transform` in `forward` in train mode only; rollout never calls it."""
    s, a = 9, 4
    stats = {k: {"mean": [0.0] * d, "std": [1.0] * d} for k, d in (("observation.state", s), ("action", a))}
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(PolicyConfig(), stats)
    calls = []
    policy.train_transform = lambda raw: calls.append(raw) or augment(raw, ON)
    g = _gen(0)
    batch = {f"observation.images.{c}": torch.rand(2, 3, 56, 56, generator=g) for c in CAMS}
    batch |= {
        "observation.state": torch.randn(2, s, generator=g),
        "task": ["lift the cube"] * 2,
        "action": torch.randn(2, 8, a, generator=g),
        "action_is_pad": torch.zeros(2, 8, dtype=torch.bool),
    }
    obs = {
        "pixels": {c: np.zeros((2, 56, 56, 3), dtype=np.uint8) for c in CAMS},
        "agent_pos": np.zeros((2, s), dtype=np.float32),
        "instruction": ["lift the cube"] * 2,
    }
    policy.eval()
    policy(batch)
    policy.predict_action_chunk(obs)
    assert calls == []
    policy.train()
    loss, _ = policy(batch)
    assert len(calls) == 1 and torch.isfinite(loss)
