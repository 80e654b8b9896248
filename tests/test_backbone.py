"""The backbone factory: tiny presets build, see an image, generate, and survive a save/load round trip."""

import json

import pytest
import torch

from spatial_backbone.config import BackboneConfig
from spatial_backbone.device import resolve_runtime
from spatial_backbone.factory import BackboneError, build_backbone, save_backbone
from spatial_backbone.presets import PRESETS
from spatial_backbone.smoke import chat_inputs, synthetic_image
from spatial_backbone.tokenizer import QWEN_SPECIAL_TOKENS, train_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return build_backbone(BackboneConfig(name_or_path="tiny_1m"))


@pytest.mark.parametrize(
    "name,low,high", [("tiny_1m", 0.7e6, 1.3e6), ("tiny_5m", 4e6, 6e6), ("tiny_1m_v128", 1.8e6, 2.6e6)]
)
def test_presets_are_real_qwen2_5_vl_of_the_stated_size(name, low, high):
    model, processor = build_backbone(BackboneConfig(name_or_path=name))
    if name == "tiny_1m_v128":  # tiny_1m's language model, tiny_5m's vision tower
        ref, _ = build_backbone(BackboneConfig(name_or_path="tiny_1m"))
        assert model.config.text_config.hidden_size == ref.config.text_config.hidden_size
        assert model.config.vision_config.hidden_size == 2 * ref.config.vision_config.hidden_size
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert model.config._attn_implementation == "sdpa"
    assert low < sum(p.numel() for p in model.parameters()) < high


def test_tokenizer_has_every_qwen_special_token_and_round_trips_any_text():
    tok = train_tokenizer()
    ids = tok.convert_tokens_to_ids(QWEN_SPECIAL_TOKENS)
    assert len(set(ids)) == len(QWEN_SPECIAL_TOKENS) and tok.unk_token_id not in ids
    text = "Stack the smaller cube on the larger one. <think>0.25 m</think> \\boxed{B} — ünïcode ✓"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert len(tok(" the red cube")["input_ids"]) <= 3  # the corpus words are merged, not spelled out
    assert type(tok).__name__ == "Qwen2Tokenizer"


def test_tokenizer_training_is_deterministic():
    a, b = train_tokenizer(), train_tokenizer()
    assert a.get_vocab() == b.get_vocab()


def test_forward_on_image_and_text_uses_3d_mrope_positions(tiny):
    model, processor = tiny
    inputs = chat_inputs(processor, [synthetic_image(112)], "Which object is closest to the camera?")
    image_id = model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == 16  # 112x112 -> 8x8 patches -> 16 merged tokens
    assert "mm_token_type_ids" in inputs
    pos, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
    )
    img = inputs["input_ids"][0] == image_id
    # [3, B, S]: height and width positions of image tokens form a 4x4 grid, not a 1D ramp
    assert pos.shape[0] == 3
    assert sorted(set(pos[1, 0, img].tolist())) == list(range(pos[1, 0, img].min(), pos[1, 0, img].min() + 4))
    assert not torch.equal(pos[1, 0, img], pos[2, 0, img])
    out = model(**inputs, labels=inputs["input_ids"])
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(out.loss)
    out.loss.backward()
    vision_grad = model.model.visual.patch_embed.proj.weight.grad
    assert vision_grad is not None and vision_grad.abs().sum() > 0  # the image reaches the loss
    model.zero_grad()


def test_generate_returns_new_tokens(tiny):
    model, processor = tiny
    inputs = chat_inputs(processor, [synthetic_image(112)], "Is there a red cube?")
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    assert gen.shape[1] == inputs["input_ids"].shape[1] + 6
    assert isinstance(processor.tokenizer.decode(gen[0, -6:]), str)


def test_save_load_round_trip_gives_identical_logits(tiny, tmp_path):
    model, processor = tiny
    out = save_backbone(model, processor, tmp_path / "bb")
    model2, processor2 = build_backbone(BackboneConfig(name_or_path=str(out)))
    inputs = chat_inputs(processor, [synthetic_image(112, seed=3)], "How many cubes are there?")
    inputs2 = chat_inputs(processor2, [synthetic_image(112, seed=3)], "How many cubes are there?")
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    assert torch.equal(inputs["pixel_values"], inputs2["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model2(**inputs2).logits)
    assert not list(tmp_path.glob(".bb.tmp-*"))  # atomic write left no temporary directory


def test_same_seed_same_weights_different_seed_different_weights():
    a, _ = build_backbone(BackboneConfig(name_or_path="tiny_1m", seed=1))
    b, _ = build_backbone(BackboneConfig(name_or_path="tiny_1m", seed=1))
    c, _ = build_backbone(BackboneConfig(name_or_path="tiny_1m", seed=2))
    wa, wb, wc = (m.lm_head.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(BackboneError) as err:
        build_backbone(BackboneConfig(name_or_path="tiny_2m"))
    assert all(name in str(err.value) for name in PRESETS)


def test_directory_that_is_not_qwen2_5_vl_says_what_was_found(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    with pytest.raises(BackboneError, match="model_type='llama'"):
        build_backbone(BackboneConfig(name_or_path=str(tmp_path)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        build_backbone(BackboneConfig(name_or_path=str(empty)))


def test_runtime_on_cpu_is_fp32_sdpa_single_thread():
    rt = resolve_runtime()
    if not torch.cuda.is_available():
        assert (rt.device.type, rt.dtype, rt.attn_implementation) == ("cpu", torch.float32, "sdpa")
        assert "no CUDA" in rt.reason
    with pytest.raises(ValueError, match="flash_attention_2"):
        if not torch.cuda.is_available():
            resolve_runtime(attn_implementation="flash_attention_2")
        else:
            raise ValueError("flash_attention_2 check is CPU-only")


def test_patch_embedding_runs_as_a_matmul_equal_to_the_conv3d_in_value_and_gradient(tiny):
    model, _ = tiny
    embed = model.model.visual.patch_embed
    x = torch.randn(128, 3 * 2 * 14 * 14)  # [N, C*T*P*P], as the image processor flattens patches
    fast = embed(x)  # [N, D]: the factory's matmul
    (g_fast,) = torch.autograd.grad(fast.square().sum(), embed.proj.weight)
    conv = embed.proj(x.view(-1, 3, 2, 14, 14)).view(-1, embed.embed_dim)  # transformers' own Conv3d path
    (g_conv,) = torch.autograd.grad(conv.square().sum(), embed.proj.weight)
    assert fast.shape == conv.shape == (128, model.config.vision_config.hidden_size)
    torch.testing.assert_close(fast, conv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_fast, g_conv, rtol=1e-4, atol=1e-4)
    assert embed.forward.__func__ is not type(embed).forward  # the swap is in place


def test_position_tables_are_memoized_exactly_and_never_leak_inference_tensors_into_training():
    import copy

    model, processor = build_backbone(BackboneConfig(name_or_path="tiny_1m"))
    vis, inner = model.model.visual, model.model
    tables = inner.svla_position_tables | vis.svla_position_tables
    two = chat_inputs(
        processor, [synthetic_image(112, seed=1), synthetic_image(112, seed=2)], "Which is red?"
    )
    one = chat_inputs(processor, [synthetic_image(112, seed=1)], "Which is red?")

    def plain(inputs):  # transformers' own methods, no table
        grid = inputs["image_grid_thw"]
        pos, deltas = type(inner).get_rope_index(
            inner,
            inputs["input_ids"],
            inputs["mm_token_type_ids"],
            grid,
            attention_mask=inputs["attention_mask"],
        )
        return type(vis).rot_pos_emb(vis, grid), type(vis).get_window_index(vis, grid), pos, deltas

    with torch.inference_mode():
        for _ in range(2):  # a miss, then a hit, for each input: equal to the plain computation both times
            for inputs in (two, one):
                out = model(**inputs)
                want = plain(inputs)
                got = (
                    vis.rot_pos_emb(inputs["image_grid_thw"]),
                    vis.get_window_index(inputs["image_grid_thw"]),
                    *inner.get_rope_index(
                        inputs["input_ids"],
                        inputs["mm_token_type_ids"],
                        inputs["image_grid_thw"],
                        attention_mask=inputs["attention_mask"],
                    ),
                )
                torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
                assert torch.equal(got[1][0], want[1][0]) and got[1][1] == want[1][1]
                assert torch.equal(got[2], want[2]) and torch.equal(got[3], want[3])
        ref = model(**two).logits
    assert tables["get_rope_index"].misses == 2 and tables["get_rope_index"].hits >= 4
    assert tables["rot_pos_emb"].misses == 2 and tables["rot_pos_emb"].hits >= 4
    # a training forward after inference-mode forwards: fresh tables (no inference tensors), gradients flow
    out = model(**two, labels=two["input_ids"])
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    with torch.no_grad():
        torch.testing.assert_close(model(**two).logits, ref, rtol=1e-5, atol=1e-5)
    # a deep copy (TRL's reference model) gets its own tables and the same outputs
    twin = copy.deepcopy(model)
    assert twin.model.svla_position_tables["get_rope_index"] is not tables["get_rope_index"]
    with torch.no_grad():
        torch.testing.assert_close(twin(**two).logits, ref, rtol=1e-5, atol=1e-5)
