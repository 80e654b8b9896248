"""Verifiable spatial rewards: never raise, stay in [0, 1], score the ground truth 1, and each component
behaves as its paper defines it (VST, SpatialThinker, Spatial-SSRL; DESIGN.md section 3)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial_backbone.evaluation.metrics import boxes3d_score
from spatial_backbone.rewards import REWARDS, get_reward, score
from spatial_backbone.rewards.common import box3d_match, ciou, label_similarity
from spatial_backbone.rewards.spatialthinker import spatial_score

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRAPH = {
    "objects": [
        {"id": "red cube.1", "bbox": [10, 10, 30, 30]},
        {"id": "blue ball.1", "bbox": [50, 40, 70, 60]},
    ],
    "relations": [{"subject": "red cube.1", "predicate": "left of", "object": "blue ball.1"}],
}
BOX3D = [0.1, -0.05, 0.8, 0.06, 0.06, 0.06, 0.5, 0.3, 0.0]
# (reward, answer_type, format, gt, core answer): one per kind of item the dataset holds
KINDS = [
    ("vst", "choice", "plain", {"letter": "B", "options": ["red cube", "blue ball"], "index": 1}, "B"),
    ("vst", "word", "think", {"word": "left", "vocab": ["left", "right"]}, "left"),
    ("vst", "number", "plain", {"value": 0.26, "unit": "m"}, "0.26 m"),
    ("vst", "number", "think", {"value": 3, "unit": ""}, "3"),
    ("vst", "ordering", "think", {"order": ["b", "a", "c"], "tokens": ["b", "a", "c"]}, "b, a, c"),
    ("vst", "box2d", "plain", {"bbox": [42, 39, 47, 45], "label": "blue ball"}, None),
    ("vst", "point", "plain", {"point": [86, 64], "bbox": [73, 55, 99, 75], "label": "pink bin"}, None),
    ("vst", "boxes3d", "plain", {"boxes": [{"label": "red cube", "bbox_3d": BOX3D}]}, None),
    ("spatialthinker", "scene_graph", "plain", GRAPH, None),
    ("spatialthinker", "choice", "spatialthinker", {"letter": "A", "options": ["x", "y"], "index": 0}, "A"),
    ("spatialthinker", "word", "spatialthinker", {"word": "yes", "vocab": ["yes", "no"]}, "yes"),
    (
        "ssrl",
        "ordering",
        "boxed",
        {"order": ["3", "1", "4", "2"], "tokens": ["1", "2", "3", "4"]},
        "3, 1, 4, 2",
    ),
    ("ssrl", "word", "boxed", {"word": "horizontal", "vocab": ["horizontal", "vertical"]}, "horizontal"),
    ("ssrl", "choice", "boxed", {"letter": "C", "options": ["p", "q", "r", "s"], "index": 2}, "C"),
]


def core_of(answer_type: str, gt: dict) -> str:
    return {
        "box2d": lambda: json.dumps([{"bbox_2d": gt["bbox"], "label": gt["label"]}]),
        "point": lambda: json.dumps([{"point_2d": gt["point"], "label": gt["label"]}]),
        "boxes3d": lambda: json.dumps(gt["boxes"]),
        "scene_graph": lambda: json.dumps(gt),
    }[answer_type]()


def render(fmt: str, core: str, graph: dict = GRAPH) -> str:
    """The answer text of a format, as the data generator writes it."""
    return {
        "plain": core,
        "think": f"<think>because</think> {core}",
        "spatialthinker": f"<observe>a table</observe>\n<scene>{json.dumps(graph)}</scene>\n"
        f"<think>so</think>\n<answer>{core}</answer>",
        "boxed": f"<think>look</think> \\boxed{{{core}}}",
    }[fmt]


def make_item(kind, completion: str) -> dict:
    reward, at, fmt, gt, core = kind
    answer = render(fmt, core or core_of(at, gt))
    return {
        "reward": reward,
        "answer_type": at,
        "format": fmt,
        "gt": json.dumps(gt),
        "answer": answer,
        "completion": completion,
    }


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_ground_truth_in_the_right_format_scores_one(kind):
    item = make_item(kind, "")
    item["completion"] = item["answer"]
    (res,) = score([item])
    assert res["overall"] == pytest.approx(1.0), res
    assert set(get_reward(kind[0]).components) <= set(res)


@SETTINGS
@given(text=st.text(max_size=300), k=st.integers(0, len(KINDS) - 1))
def test_arbitrary_text_never_raises_and_stays_in_unit_interval(text, k):
    (res,) = score([make_item(KINDS[k], text)])
    assert all(0.0 <= v <= 1.0 for v in res.values()), res


TRICKY = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "<scene>",
        "</scene>",
        "<observe>",
        "</observe>",
        "\\boxed{",
        "}",
        "{",
        "[",
        "]",
        '"bbox_3d": ',
        '"bbox": ',
        '"objects": ',
        '"id": ',
        "NaN",
        "Infinity",
        "-1e308",
        "1e309",
        ", ",
        "A",
        "B",
        "left",
        "3",
        "0.26 m",
        '"x"',
        "null",
        "[1, 2, 3, 4]",
        "[0,0,0,1e300,1e300,1e300,9,9,9]",
    ]
)


@SETTINGS
@given(parts=st.lists(TRICKY, max_size=25), k=st.integers(0, len(KINDS) - 1))
def test_near_miss_structured_garbage_never_raises(parts, k):
    (res,) = score([make_item(KINDS[k], "".join(parts))])
    assert all(0.0 <= v <= 1.0 for v in res.values()), res


@pytest.mark.parametrize("bad_gt", ["not json", "[1, 2]", "{}", '{"letter": null}'])
def test_garbage_ground_truth_scores_zero(bad_gt):
    for family in REWARDS:
        item = {"reward": family, "answer_type": "choice", "format": "plain", "gt": bad_gt, "completion": "A"}
        (res,) = score([item])
        assert res["overall"] == 0.0


@SETTINGS
@given(
    options=st.lists(
        st.sampled_from(["red cube", "blue ball", "green bin", "pink plate"]),
        min_size=2,
        max_size=4,
        unique=True,
    ),
    data=st.data(),
)
def test_any_correct_choice_scores_one_in_every_format(options, data):
    index = data.draw(st.integers(0, len(options) - 1))
    letter = "ABCD"[index]
    gt = {"letter": letter, "options": options, "index": index}
    for reward, fmt in [
        ("vst", "plain"),
        ("vst", "think"),
        ("spatialthinker", "spatialthinker"),
        ("ssrl", "boxed"),
    ]:
        item = make_item((reward, "choice", fmt, gt, letter), "")
        item["completion"] = item["answer"]
        assert score([item])[0]["overall"] == pytest.approx(1.0)
        wrong = make_item((reward, "choice", fmt, gt, "ABCD"[(index + 1) % len(options)]), "")
        wrong["completion"] = wrong["answer"]
        assert score([dict(item, completion=wrong["completion"])])[0]["overall"] < 1.0


@SETTINGS
@given(value=st.floats(0.01, 50, allow_nan=False), unit=st.sampled_from(["m", "cm", ""]))
def test_numbers_with_units_score_one(value, unit):
    v = round(value, 2)
    gt = {"value": v, "unit": unit}
    for fmt in ("plain", "think"):
        item = make_item(("vst", "number", fmt, gt, f"{v} {unit}".strip()), "")
        assert score([dict(item, completion=item["answer"])])[0]["overall"] == pytest.approx(1.0)


# -- components, family by family
# -----------------------------------------------------------------------------------
def test_vst_is_half_accuracy_half_format():
    kind = KINDS[0]  # choice B
    assert score([make_item(kind, "A")])[0] | {} == pytest.approx(
        {"overall": 0.5, "format": 1.0, "accuracy": 0.0}
    )
    lenient = make_item(kind, "I think the answer is B, the blue ball")  # parsed leniently, badly formed
    assert score([lenient])[0]["overall"] == 0.5
    think = make_item(KINDS[1], "left")  # think item answered without <think>: accuracy only
    assert score([think])[0] == pytest.approx({"overall": 0.5, "format": 0.0, "accuracy": 1.0})


def test_vst_boxes3d_accuracy_is_half_matched_iou_half_f1():
    gt = {
        "boxes": [
            {"label": "a", "bbox_3d": BOX3D},
            {"label": "b", "bbox_3d": [0.3, 0, 1, 0.1, 0.1, 0.1, 0, 0, 0]},
        ]
    }
    kind = ("vst", "boxes3d", "plain", gt, None)
    (res,) = score([make_item(kind, json.dumps(gt["boxes"][:1]))])  # one of two boxes, exact
    assert res["box_iou"] == pytest.approx(0.5) and res["box_f1"] == pytest.approx(2 / 3)
    assert res["accuracy"] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert res["accuracy"] == pytest.approx(boxes3d_score(gt["boxes"][:1], gt))  # the evaluation's metric


def test_spatialthinker_gate_and_answer_gated_spatial_term():
    kind = KINDS[9]  # choice A, reference graph GRAPH
    ungated = make_item(kind, "<answer>A</answer>")  # right answer, no observe/scene/think: gate closed
    assert score([ungated])[0]["overall"] == 0.0
    moved = json.loads(json.dumps(GRAPH))
    moved["objects"][0]["bbox"] = [60, 60, 80, 80]
    right = score([make_item(kind, render("spatialthinker", "A", moved))])[0]
    wrong = score([make_item(kind, render("spatialthinker", "B", GRAPH))])[0]
    assert right["format_gate"] == 1.0 and right["accuracy"] == 1.0 and right["count"] == 1.0
    assert 0 < right["spatial"] < 1 and right["overall"] < 1.0
    assert wrong["accuracy"] == 0.0 and wrong["spatial"] == 0.0  # perfect boxes, wrong answer: no box reward
    assert wrong["overall"] == pytest.approx(0.1 + 0.2)  # format + count
    fewer = {"objects": GRAPH["objects"][:1], "relations": []}
    assert score([make_item(kind, render("spatialthinker", "A", fewer))])[0]["count"] == pytest.approx(
        0.7 * 0.5
    )


def test_ssrl_is_point_nine_exact_match_plus_point_one_format():
    kind = KINDS[11]  # ordering 3, 1, 4, 2
    assert score([make_item(kind, "<think>x</think> \\boxed{3,1,4,2}")])[0]["overall"] == pytest.approx(1.0)
    assert score([make_item(kind, "\\boxed{3, 1, 4, 2}")])[0]["overall"] == pytest.approx(0.9)  # no think
    assert score([make_item(kind, "<think>x</think> \\boxed{1, 3, 4, 2}")])[0]["overall"] == pytest.approx(
        0.1
    )
    assert score([make_item(kind, "<think>x</think> 3, 1, 4, 2")])[0]["overall"] == 0.0  # no \boxed{}


def test_registry_keeps_order_and_rejects_unknown_families():
    items = [make_item(k, "") for k in KINDS]
    items = [dict(it, completion=it["answer"] if i % 2 else "nope") for i, it in enumerate(items)]
    res = score(items)
    assert [r["overall"] == pytest.approx(1.0) for r in res] == [bool(i % 2) for i in range(len(items))]
    with pytest.raises(KeyError, match="valid"):
        score([dict(items[0], reward="spacy")])


# -- boxes: 1 when identical, falling as they move apart
# --------------------------------------------------------------------
box2d = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@SETTINGS
@given(box=box2d, direction=st.sampled_from([(1, 0), (0, 1), (1, 1), (-1, 0.5)]))
def test_ciou_is_one_for_identical_boxes_and_falls_as_they_separate(box, direction):
    assert ciou(box, box) == pytest.approx(1.0)
    values = []
    for step in range(12):
        d = step * 0.25 * (box[2] - box[0] + box[3] - box[1])
        moved = [
            box[0] + d * direction[0],
            box[1] + d * direction[1],
            box[2] + d * direction[0],
            box[3] + d * direction[1],
        ]
        values.append(ciou(box, moved))
    assert all(b < a for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] < 0  # far apart: CIoU keeps falling below 0 (plain IoU would stay at 0)


@SETTINGS
@given(
    size=st.tuples(st.floats(0.02, 0.3), st.floats(0.02, 0.3), st.floats(0.02, 0.3)),
    yaw=st.floats(-3, 3),
    axis=st.integers(0, 2),
)
def test_3d_box_terms_are_one_for_identical_boxes_and_fall_as_they_separate(size, yaw, axis):
    box = [0.0, 0.0, 1.0, *size, 0.4, yaw, 0.0]
    iou, f1 = box3d_match([box], [box])
    assert iou == pytest.approx(1.0) and f1 == 1.0
    values = []
    for step in range(8):
        moved = list(box)
        moved[axis] += step * 0.3 * max(size)  # last step 2.1 x size > the box diagonal (sqrt(3) x size)
        values.append(box3d_match([moved], [box])[0])
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] == pytest.approx(1.0) and values[-1] == 0.0
    # the VST reward follows: accuracy falls from 1 to 0 as the predicted box moves away
    gt = {"boxes": [{"label": "x", "bbox_3d": box}]}
    far = dict(gt, boxes=[{"label": "x", "bbox_3d": [*box[:2], box[2] + 5, *box[3:]]}])
    kind = ("vst", "boxes3d", "plain", gt, None)
    assert score([make_item(kind, json.dumps(gt["boxes"]))])[0]["accuracy"] == pytest.approx(1.0)
    assert score([make_item(kind, json.dumps(far["boxes"]))])[0]["accuracy"] == 0.0


@SETTINGS
@given(box=box2d)
def test_spatialthinker_spatial_term_falls_as_boxes_move_apart(box):
    ref = {"objects": [{"id": "red cube.1", "bbox": box}], "relations": []}
    values = []
    for step in range(10):
        d = step * 0.3 * (box[2] - box[0])
        values.append(
            spatial_score(
                {"objects": [{"id": "red cube.1", "bbox": [box[0] + d, box[1], box[2] + d, box[3]]}]}, ref
            )
        )
    assert values[0] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] < values[0]


def test_label_similarity():
    assert label_similarity("red cube.1", "red cube") == 1.0
    assert label_similarity("red sphere", "red ball.2") == 1.0
    assert label_similarity("red cube", "blue cube") == pytest.approx(1 / 3)
    assert label_similarity("red cube", "blue ball") == 0.0
    assert label_similarity("", "red cube") == 0.0
