"""The SFT answer-routing loss (`spatial_backbone.sft.routing`): its attention is the layer's own (equal to
the model's eager attention weights, packed items isolated), its targets follow the question's order of
mention, it learns, and `svla-sft` logs it and rejects a bad layer."""

import json

import numpy as np
import pytest
import torch

from envs.hydra_utils import compose
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.io import load_split
from spatial_backbone.factory import build_backbone
from spatial_backbone.sft.config import SFTConfig, SFTGroundingConfig
from spatial_backbone.sft.grounding import covered_cells
from spatial_backbone.sft.packing import PackedCollator, VisionSpec, dataset_fovy, encode_items
from spatial_backbone.sft.routing import AttentionTap, object_place
from spatial_backbone.sft.train import GroundedAnswerLoss, train


@pytest.fixture(scope="module")
def encoded(small_spatial_dataset):
    """(processor, train items, their encodings with mentions) of the small dataset."""
    _, processor = build_backbone(BackboneConfig())
    items = load_split(small_spatial_dataset, "train")
    return processor, items, encode_items(processor, items, small_spatial_dataset, mentions=True)


def _batch(processor, rows):
    return PackedCollator(VisionSpec.from_processor(processor), packed=True)(rows)


def test_routing_attention_is_the_layers_own_eager_attention(encoded):
    processor, _, enc = encoded
    model, _ = build_backbone(BackboneConfig(attn_implementation="eager"))
    named = [e for e in enc if e.mentions][:4]
    batch = _batch(processor, [named[:2], named[2:]])  # two items packed per row
    tap = AttentionTap(model, -1)
    with torch.no_grad():
        out = model.model(
            input_ids=batch["input_ids"],
            attention_mask=None,
            position_ids=batch["position_ids"],
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            output_attentions=True,
            use_cache=False,
        )
        targets = batch["routing"]
        probs = tap.head_probs(targets)
    ref = out.attentions[tap.layer]  # [B, H, S, S]
    assert len(targets) >= 4 and {t["row"] for t in targets} == {0, 1}
    for t, p in zip(targets, probs, strict=True):
        row = ref[t["row"], t["head"], t["query"]]  # [S]
        torch.testing.assert_close(p, row[t["start"] : t["query"] + 1], rtol=1e-4, atol=1e-6)
        assert float(row[: t["start"]].sum()) < 1e-6  # the packed item before it is invisible
        assert float(row[t["query"] + 1 :].sum()) < 1e-6  # causal
    tap.remove()


def test_targets_name_the_questions_objects_in_order_where_the_core_answer_starts(encoded):
    processor, items, enc = encoded
    tok = processor.tokenizer
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    checked, formats = 0, set()
    for it, e in zip(items, enc, strict=True):
        if len({m.obj for m in e.mentions}) < 2:
            continue
        targets = _batch(processor, [[e]])["routing"]
        at_prompt_end = PackedCollator(VisionSpec.from_processor(processor), routing_at="prompt_end")([[e]])
        assert {t["query"] for t in at_prompt_end["routing"]} == {e.n_prompt - 1}
        queries = {t["query"] for t in targets}
        assert len(queries) == 1
        rest = tok.decode(e.input_ids[queries.pop() + 1 : -1])  # from the predicted token to <|im_end|>
        assert rest.lstrip().startswith(it["core_answer"].strip()), (it["answer"], rest)
        formats.add(it["format"])
        labels = [it_obj["label"] for it_obj in _objects(it)]
        named = [labels[m.obj] for m in sorted(e.mentions, key=lambda m: m.query)]
        order = list(dict.fromkeys(named))  # distinct, first mention first
        q = it["question"].lower()
        assert [q.index(name.lower()) for name in order] == sorted(q.index(n.lower()) for n in order)
        assert [t["head"] for t in targets] == list(range(len(order)))
        for t in targets:
            assert t["start"] == 0 and (t["query"] == e.n_prompt - 1) == (it["answer"] == it["core_answer"])
            assert (torch.from_numpy(e.input_ids[t["keys"].numpy()]) == image_pad).all()
            assert t["positive"].any()
        checked += 1
    assert checked >= 3 and len(formats) >= 2, formats  # a plain and a reasoning format at least


def test_answer_span_queries_every_core_answer_position_and_weighs_each_object_once(encoded):
    processor, items, enc = encoded
    tok = processor.tokenizer
    collate = PackedCollator(VisionSpec.from_processor(processor), routing_at="answer")
    long = [(it, e) for it, e in zip(items, enc, strict=True) if e.mentions and len(e) - e.core_at > 3]
    assert long, "the small dataset has no named-object item with a multi-token core answer"
    it, e = long[0]
    targets = collate([[e]])["routing"]
    for head in {t["head"] for t in targets}:
        mine = [t for t in targets if t["head"] == head]
        queries = [t["query"] for t in mine]
        assert queries == list(range(e.core_at - 1, len(e) - 2))  # predicting the core .. before <|im_end|>
        assert (
            tok.decode(e.input_ids[queries[0] + 1 : queries[-1] + 2])
            .strip()
            .startswith(it["core_answer"].strip())
        )
        assert sum(t["weight"] for t in mine) == pytest.approx(1.0)
    model = build_backbone(BackboneConfig())[0]
    tap = AttentionTap(model, -1)
    batch = collate([[e]])
    with torch.no_grad():
        model.model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            use_cache=False,
        )
        loss = tap.loss(targets)["routing"]
        probs = tap.head_probs(targets)
    nll = [
        -torch.log(p[t["keys"][t["positive"]] - t["start"]].sum())
        for t, p in zip(targets, probs, strict=True)
    ]
    per_object = [
        torch.stack([n for n, t in zip(nll, targets, strict=True) if t["head"] == h]).mean()
        for h in {t["head"] for t in targets}
    ]
    torch.testing.assert_close(loss, torch.stack(per_object).mean())
    tap.remove()


def _parsed(field):
    return json.loads(field) if isinstance(field, str) else field


def _objects(item):
    return _parsed(item["meta"])["scene_objects"]


def test_routing_loss_learns_a_batch(encoded, descend):
    processor, _, enc = encoded
    model = build_backbone(BackboneConfig())[0]
    batch = _batch(processor, [[e] for e in enc if e.mentions][:4])
    loss = GroundedAnswerLoss(model, SFTGroundingConfig(attention_weight=1.0))
    assert loss.grounding is None and not list(p for n, p in loss.named_parameters() if "backbone" not in n)
    first, last = descend(lambda: loss(batch)[2]["routing"], model.parameters(), 40, 3e-3)
    assert last < 0.5 * first, (first, last)


def test_routed_run_logs_the_loss_and_quotes_a_bad_layer(small_spatial_dataset, tmp_path):
    over = [f"data.dir={small_spatial_dataset}", "progress=false", "log_every=1", "packing.rows=2"]
    cfg = compose(
        "sft",
        [
            *over,
            f"output_dir={tmp_path / 'r'}",
            "steps=3",
            "grounding.attention_weight=1.0",
            "grounding.value_weight=1.0",
        ],
        schema=SFTConfig,
    )
    run = train(cfg)
    logged = [r["routing"] for r in run["history"]]
    assert all(np.isfinite(v) and v >= 0 for v in logged) and max(logged) > 0.5, logged
    values = [r["routing_value"] for r in run["history"]]
    assert all(np.isfinite(v) and v >= 0 for v in values) and max(values) > 0, values
    assert all("grounding" not in r for r in run["history"])  # the word-region head stays off
    bad = compose(
        "sft",
        [
            *over,
            f"output_dir={tmp_path / 'b'}",
            "steps=1",
            "grounding.attention_weight=1.0",
            "grounding.attention_layer=5",
        ],
        schema=SFTConfig,
    )
    with pytest.raises(ValueError, match="grounding.attention_layer=5"):
        train(bad)
    with pytest.raises(ValueError, match="grounding.attention_at='middle'"):
        SFTGroundingConfig(attention_at="middle")


def test_object_place_is_the_mean_cell_centre_in_the_first_image_it_covers():
    torch.testing.assert_close(object_place([1, 2], [(4, 4), (4, 4)]), torch.tensor([0.125, 0.5]))
    torch.testing.assert_close(object_place([16 + 5], [(4, 4), (4, 4)]), torch.tensor([0.375, 0.375]))
    with pytest.raises(ValueError, match="fall in no image"):
        object_place([40], [(4, 4)])


def test_object_place_is_near_the_datasets_own_points(small_spatial_dataset, grounding_answers):
    """The value target of a grounding item's object lies within one token cell (28 px) of the item's answer
    point / box centre (from the rendered segmentation), and within half a cell on average."""
    fovy, errors = dataset_fovy(small_spatial_dataset), []
    for meta, obj, (u, v) in grounding_answers(small_spatial_dataset):
        row, col = object_place(covered_cells(obj, meta["views"][0], (4, 4), 28, fovy), [(4, 4)]) * 112
        errors.append((abs(float(col) - u), abs(float(row) - v)))
    errors = np.asarray(errors)
    assert len(errors) >= 3 and errors.max() <= 28 and errors.mean() <= 14, errors


def test_value_term_learns_a_batch(encoded, descend):
    processor, _, enc = encoded
    model = build_backbone(BackboneConfig())[0]
    batch = _batch(processor, [[e] for e in enc if e.mentions][:4])
    loss = GroundedAnswerLoss(model, SFTGroundingConfig(value_weight=1.0))
    first, last = descend(lambda: loss(batch)[2]["routing_value"], model.parameters(), 40, 3e-3)
    assert last < 0.3 * first, (first, last)
