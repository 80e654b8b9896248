"""Spatial dataset generation and I/O: deterministic splits, the shifted split, atomic writes, the documented
format (JSONL + images, HF datasets), and clear errors for bad input and corrupt files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from envs.hydra_utils import ConfigError, compose  # noqa: E402
from spatial_backbone.data.config import CameraConfig, SpatialDataConfig  # noqa: E402
from spatial_backbone.data.context import in_shifted_band  # noqa: E402
from spatial_backbone.data.generate import generate, sample_scene, scene_rng  # noqa: E402
from spatial_backbone.data.io import DataFormatError, load_images, load_manifest, load_split, to_hf_dataset  # noqa: E402
from spatial_backbone.data.skills import UnknownSkillError  # noqa: E402

SCENES = {"train": 4, "val": 1, "test": 2, "shifted": 2}


def small_cfg(out, **kw) -> SpatialDataConfig:
    base = dict(out_dir=str(out), scenes=dict(SCENES), questions_per_scene=6, num_workers=0, chunk_scenes=2)
    return SpatialDataConfig(**(base | kw))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate(small_cfg(tmp_path_factory.mktemp("sd") / "data"), progress=False)


def test_layout_manifest_and_records(dataset):
    m = load_manifest(dataset)
    assert m["format_version"] == 1 and set(m["splits"]) == {"train", "val", "test", "shifted"}
    items = load_split(dataset, "train")
    assert len(items) == m["splits"]["train"]["items"] == 4 * 6
    for it in items:
        assert it["reward"] in ("vst", "spatialthinker", "ssrl")
        assert it["answer_type"] in (
            "choice",
            "word",
            "number",
            "ordering",
            "box2d",
            "point",
            "boxes3d",
            "scene_graph",
        )
        assert isinstance(it["gt"], dict) and it["meta"]["split"] == "train"
        imgs = load_images(dataset, it)
        assert imgs and all(im.dtype == np.uint8 and im.shape == (112, 112, 3) for im in imgs)
        if it["format"] == "think":
            assert it["answer"].startswith("<think>") and it["answer"].endswith(it["core_answer"])
        if it["format"] == "boxed":
            assert it["answer"].endswith(f"\\boxed{{{it['core_answer']}}}")
    assert len({it["skill"] for it in items}) >= 10
    assert not list(dataset.parent.glob(".data.tmp-*"))  # the atomic write left nothing behind


def test_loads_with_hf_datasets(dataset):
    ds = to_hf_dataset(dataset, "test", with_images=True)
    assert len(ds) == 2 * 6 and set(ds.column_names) >= {"question", "answer", "images", "gt", "reward"}
    assert ds[0]["images"][0].size == (112, 112)
    assert json.loads(ds[0]["gt"])


def test_same_seed_same_data_independent_of_workers(dataset, tmp_path):
    again = generate(small_cfg(tmp_path / "again", num_workers=2, scenes={"test": 2}), progress=False)
    a, b = load_split(dataset, "test"), load_split(again, "test")
    assert [x["answer"] for x in a] == [x["answer"] for x in b]
    assert np.array_equal(load_images(dataset, a[0])[0], load_images(again, b[0])[0])


def test_splits_are_disjoint_and_shifted_is_out_of_distribution(dataset):
    cfg = small_cfg("unused")
    held = set(cfg.heldout_pairs)
    for split in ("train", "val", "test"):
        for i in range(SCENES[split]):
            spec, pose, _ = sample_scene(cfg, split, scene_rng(cfg.seed, split, i))
            assert not {f"{o.color}_{o.shape}" for o in spec.objects} & held
            assert not in_shifted_band(cfg.camera, pose.azimuth, pose.elevation)
    for i in range(20):
        spec, pose, _ = sample_scene(cfg, "shifted", scene_rng(cfg.seed, "shifted", i))
        assert {f"{o.color}_{o.shape}" for o in spec.objects} & held
        assert in_shifted_band(cfg.camera, pose.azimuth, pose.elevation)
    seeds = {s: {tuple(it["meta"]["scene_seed"]) for it in load_split(dataset, s)} for s in SCENES}
    assert all(not seeds[a] & seeds[b] for a in seeds for b in seeds if a < b)
    for it in load_split(dataset, "shifted"):
        for v in it["meta"].get("views", []):
            if v["camera"] in ("main", "second"):
                assert in_shifted_band(CameraConfig(), v["azimuth"], v["elevation"])


def test_unknown_skill_is_rejected_before_work(tmp_path):
    with pytest.raises(UnknownSkillError, match="valid skills: .*depth_comparison"):
        generate(small_cfg(tmp_path / "x", skills=["depth_comparison", "mind_reading"]), progress=False)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_overwrite(dataset):
    with pytest.raises(FileExistsError, match="overwrite=true"):
        generate(small_cfg(dataset), progress=False)


def test_skill_subset_and_weights(tmp_path):
    out = generate(
        small_cfg(
            tmp_path / "sub",
            skills=["grounding_point", "grounding_box"],
            scenes={"train": 2},
            questions_per_scene=4,
        ),
        progress=False,
    )
    items = load_split(out, "train")
    assert {it["skill"] for it in items} <= {"grounding_point", "grounding_box"} and len(items) == 8


def test_truncated_and_corrupt_files_name_the_file(dataset, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    path = bad / "train.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut mid-line
    with pytest.raises(DataFormatError, match=r"train\.jsonl:\d+ is corrupt or truncated"):
        load_split(bad, "train")
    lines = text.splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # whole lines missing
    with pytest.raises(DataFormatError, match="truncated"):
        load_split(bad, "train")
    item = load_split(bad, "val")[0]
    (bad / item["images"][0]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFormatError, match=item["images"][0].split("/")[-1]):
        load_images(bad, item)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="manifest.json is corrupt"):
        load_split(bad, "val")
    with pytest.raises(DataFormatError, match="not a spatial dataset"):
        load_split(tmp_path, "val")


def test_config_yaml_mirrors_dataclass_and_validates():
    assert compose("spatial_data", schema=SpatialDataConfig) == SpatialDataConfig()
    fast = compose("spatial_data", ["debug=spatial_data_fast"], schema=SpatialDataConfig)
    assert fast.scenes["train"] < 20 and fast.num_workers == 0
    with pytest.raises(ConfigError, match="heldout_pairs"):
        compose("spatial_data", ["heldout_pairs=[red_banana]"], schema=SpatialDataConfig)
    with pytest.raises(ConfigError, match="image_size=8"):
        compose("spatial_data", ["image_size=8"], schema=SpatialDataConfig)
    with pytest.raises(ConfigError, match="camera.fovy=500"):
        compose("spatial_data", ["camera.fovy=500"], schema=SpatialDataConfig)
