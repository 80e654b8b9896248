"""`backbone.abs_pos`: the absolute 2D position signal on the vision patch embeddings (`abs_position.py`)."""

import copy

import numpy as np
import pytest
import torch

from spatial_backbone.abs_position import position_table
from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import BackboneError, build_backbone, save_backbone
from spatial_backbone.sft.packing import VisionSpec, patchify


def _tokens(model, processor, images):
    pv, grid = patchify(images, VisionSpec.from_processor(processor))
    with torch.no_grad():
        out = model.model.visual(pv, grid_thw=grid)
    return getattr(out, "pooler_output", out)  # [N_tokens, D]


def test_table_follows_the_processors_patch_order():
    """Patch k of an image whose pixels encode (row, col) gets the features of that row and column."""
    spec = VisionSpec.from_processor(build_backbone(BackboneConfig(image_size=224))[1])
    h, w = 112, 168  # 8 x 12 patches: rows and columns differ
    rows, cols = np.meshgrid(np.arange(h) // spec.patch, np.arange(w) // spec.patch, indexing="ij")
    img = np.stack([rows * 20, cols * 20, np.zeros_like(rows)], -1).astype(np.uint8)
    pv, grid = patchify([img], spec)
    assert grid.tolist() == [[1, 8, 12]]
    mean = torch.tensor(spec.mean).view(3, 1)
    std = torch.tensor(spec.std).view(3, 1)
    px = pv.view(len(pv), 3, -1) * std + mean  # [N, 3, T*P*P] back to [0, 1]
    seen_row = (px[:, 0].mean(-1) * 255 / 20).round()  # [N]
    seen_col = (px[:, 1].mean(-1) * 255 / 20).round()
    table = position_table(grid, 64, spec.merge)  # [N, 64]
    ref = position_table(torch.tensor([[1, 8, 12]]), 64, 1)  # merge 1: plain row-major order
    for k in range(len(pv)):
        r, c = int(seen_row[k]), int(seen_col[k])
        torch.testing.assert_close(table[k], ref[r * 12 + c])


def test_tokens_of_a_blank_image_differ_only_with_the_signal_and_it_survives_save_load_and_copy(tmp_path):
    blank = [np.full((112, 112, 3), 120, np.uint8)]
    plain, processor = build_backbone(BackboneConfig())
    tokens = _tokens(plain, processor, blank)
    assert (tokens - tokens[0]).abs().max() < 1e-5  # relative positions only: a blank image is uniform
    model, processor = build_backbone(BackboneConfig(abs_pos=True))
    tokens = _tokens(model, processor, blank)
    assert (tokens - tokens[0]).abs().amax(-1)[1:].min() > 1e-3  # every token differs from the first
    # the weights are the preset's own: the signal adds no parameters
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    out = save_backbone(model, processor, tmp_path / "b")
    loaded, _ = build_backbone(BackboneConfig(name_or_path=str(out)))
    assert torch.equal(_tokens(loaded, processor, blank), tokens)
    assert torch.equal(_tokens(copy.deepcopy(loaded), processor, blank), tokens)
    plain_dir = save_backbone(plain, processor, tmp_path / "plain")
    with pytest.raises(BackboneError, match="abs_pos=true.*without the absolute position"):
        build_backbone(BackboneConfig(name_or_path=str(plain_dir), abs_pos=True))
    reloaded_plain, _ = build_backbone(BackboneConfig(name_or_path=str(plain_dir)))
    assert (
        _tokens(reloaded_plain, processor, blank) - _tokens(reloaded_plain, processor, blank)[0]
    ).abs().max() < 1e-5
