"""Train-time image augmentation of a `RawObservation`: random shift (DrQ), random crop (Diffusion Policy).

Why: a tiny VLA trained on a few hundred demonstrations overfits (held-out success peaks early and falls
while the training loss keeps falling; with 50 demos the train 3D error is ~1 cm, held-out ~9 cm). Random
shifts and crops are the standard regularizer of visuomotor policies (DrQ: pad 4 px with edge replication,
random crop back to size; Diffusion Policy / ACT: random crop of ~90% of the side, resized back).

Decisions:
- One geometric transform per image: output pixel x samples the input at `scale * x + shift` (normalized
  coordinates; `F.grid_sample`, bilinear, `padding_mode="border"` = edge replication, `align_corners=False`).
  `shift_px` draws an integer shift in [-shift_px, shift_px] pixels per axis (DrQ; an integer shift copies
  pixels exactly); `crop_scale` < 1 crops a window of that fraction of each side at a uniform random
  position and resizes it back to H x W. Both may be combined; shapes, dtype and device are preserved and
  values stay in [0, 1] (bilinear interpolation is convex).
- Per sample, and independently per camera: front and wrist views share no image geometry (a shift of one
  is not a shift of the other), so a shared draw adds no consistency, only correlation; independent draws
  give each camera its own nuisance, as robomimic's `CropRandomizer` does per observation key.
- The grounding targets follow the image: the (u, v) in [-1, 1] of the target/goal in a camera (privileged
  state, `privileged_uv_index`) become `(uv - shift) / scale`. Points not in the original view (|u| or
  |v| > 1, including the `OUT_OF_VIEW` sentinel) stay as they are, so they stay unsupervised; a point that
  leaves the view gets |u| or |v| > 1 (clamped to `OUT_OF_VIEW`) and the grounding loss skips it. 3D
  positions are unchanged.
- Randomness: a `torch.Generator` if given, else torch's global CPU RNG, which `svla-train` seeds with the
  run's seed and saves/restores with every checkpoint (`spatial_backbone.training_state.rng_state`), so a
  resumed run draws the same augmentations as an uninterrupted one. Parameters are always drawn on the CPU
  (a CUDA draw would use the CUDA RNG, which checkpoints do not save), then moved to the images' device.
- Training only: `SpatialVLAPolicy.forward` applies it in train mode between `raw_from_dataset` and the one
  processor call; rollout (`predict_chunk_from_raw`) never does. Disabled, it is not called at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from envs.tasks.base import (
    OBJECT_SLOTS,
    OUT_OF_VIEW,
    PRIVILEGED_CAMERAS,
    PRIVILEGED_POINTS,
    object_uv_index,
    privileged_uv_index,
)
from vla.processor import RawObservation


@dataclass
class AugmentConfig:
    """enabled: augment training images (off by default: existing runs are unchanged).
    shift_px: DrQ random shift, integer pixels per axis in [-shift_px, shift_px], edge replication; 0 = none.
    crop_scale: random crop of this fraction of each side, resized back (Diffusion Policy ~0.9); 1 = none."""

    enabled: bool = False
    shift_px: int = 4
    crop_scale: float = 1.0

    def __post_init__(self):
        if isinstance(self.shift_px, bool) or int(self.shift_px) != self.shift_px or self.shift_px < 0:
            raise ValueError(f"augment.shift_px={self.shift_px!r} must be an integer >= 0 (DrQ uses 4)")
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(
                f"augment.crop_scale={self.crop_scale!r} must be in (0, 1] "
                "(1.0 = no crop; Diffusion Policy uses ~0.9)"
            )
        if self.enabled and self.shift_px == 0 and self.crop_scale == 1.0:
            raise ValueError(
                "augment.enabled=true with augment.shift_px=0 and augment.crop_scale=1.0 changes nothing; "
                "set augment.shift_px > 0 and/or augment.crop_scale < 1, or augment.enabled=false"
            )


def draw_transforms(
    cfg: AugmentConfig, b: int, h: int, w: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample transform of one camera: scale [B, 1] and shift [B, 2] (x, y) in normalized coordinates,
    drawn on the CPU. Output coordinate x samples the input at `scale * x + shift`."""
    if 2 * cfg.shift_px >= min(h, w):
        raise ValueError(
            f"augment.shift_px={cfg.shift_px} is too large for {h}x{w} images; "
            f"use at most {(min(h, w) - 1) // 2}"
        )
    scale = torch.full((b, 1), float(cfg.crop_scale))  # [B, 1]
    # crop window centre: uniform so that the window stays inside the image
    shift = (torch.rand((b, 2), generator=generator) * 2.0 - 1.0) * (1.0 - cfg.crop_scale)  # [B, 2]
    if cfg.shift_px > 0:
        px = torch.randint(-cfg.shift_px, cfg.shift_px + 1, (b, 2), generator=generator).float()  # [B, 2]
        shift = shift + px * torch.tensor([2.0 / w, 2.0 / h])  # pixels -> normalized
    return scale, shift


def warp(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """images [B, 3, H, W] -> [B, 3, H, W]: output (x, y) = input (scale * x + shift), edge replication."""
    b = images.shape[0]
    theta = torch.zeros((b, 2, 3), dtype=torch.float32)  # [B, 2, 3]
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 0]
    theta[:, :, 2] = shift
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # [B, H, W, 2]
    out = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # [B, 3, H, W]
    return out.clamp(0.0, 1.0).to(images.dtype)


def transform_uv(uv: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uv [B, 2] in [-1, 1] of the input image -> where the same point is in the warped image. Points not in
    the original view (|u| or |v| > 1, e.g. `OUT_OF_VIEW`) are returned unchanged."""
    seen = (uv.abs() <= 1.0).all(-1, keepdim=True)  # [B, 1]
    moved = ((uv - shift.to(uv)) / scale.to(uv)).clamp(-OUT_OF_VIEW, OUT_OF_VIEW)  # [B, 2]
    return torch.where(seen, moved, uv)


def augment(
    raw: RawObservation, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> RawObservation:
    """A new RawObservation with every camera's images randomly shifted/cropped (per sample, per camera) and
    the privileged (u, v) of those cameras moved with them. `raw` is not modified. Identity when disabled."""
    if not cfg.enabled:
        return raw
    images = {}
    privileged = raw.privileged.clone() if raw.privileged is not None else None  # [B, P]
    objects = raw.objects.clone() if raw.objects is not None else None  # [B, O]
    for cam, img in raw.images.items():
        b, _, h, w = img.shape
        scale, shift = draw_transforms(cfg, b, h, w, generator)
        images[cam] = warp(img, scale, shift)
        if privileged is not None and cam in PRIVILEGED_CAMERAS:
            for point in PRIVILEGED_POINTS:
                i = privileged_uv_index(point, cam)
                privileged[:, i : i + 2] = transform_uv(privileged[:, i : i + 2], scale, shift)
        if objects is not None and cam in PRIVILEGED_CAMERAS:
            for slot in range(OBJECT_SLOTS):
                i = object_uv_index(slot, cam)
                objects[:, i : i + 2] = transform_uv(objects[:, i : i + 2], scale, shift)
    return replace(raw, images=images, privileged=privileged, objects=objects)


class TrainAugment:
    """The callable `SpatialVLAPolicy.forward` applies to training observations (global torch RNG)."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def __call__(self, raw: RawObservation) -> RawObservation:
        return augment(raw, self.cfg)
