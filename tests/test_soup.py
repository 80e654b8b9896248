"""svla-soup: a weight-space average of backbones tuned from one start, loaded by the backbone factory."""

import json
import shutil

import pytest
import torch

from envs.hydra_utils import ConfigError, compose
from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import build_backbone, save_backbone
from spatial_backbone.soup import SOUP_MANIFEST, SoupConfig, make_soup, run


def _perturbed_copy(model, processor, out, seed: int, sharded: bool = False):
    """Save `model` with every floating parameter moved by a seeded random delta; return the moved weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        original = {n: p.detach().clone() for n, p in model.named_parameters()}
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
        moved = {n: p.detach().clone() for n, p in model.named_parameters()}
        if sharded:
            model.save_pretrained(out, max_shard_size="300KB")
            processor.save_pretrained(out)
        else:
            save_backbone(model, processor, out)
        for n, p in model.named_parameters():
            p.copy_(original[n])
    return moved


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """A start backbone and two fine-tunes of it (known deltas), single-file and sharded."""
    root = tmp_path_factory.mktemp("soup")
    model, processor = build_backbone(BackboneConfig(name_or_path="tiny_1m"))
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    save_backbone(model, processor, root / "base")
    tuned = [_perturbed_copy(model, processor, root / f"t{i}", seed=i) for i in (1, 2)]
    model.save_pretrained(root / "base_sharded", max_shard_size="300KB")
    processor.save_pretrained(root / "base_sharded")
    for i in (1, 2):
        _perturbed_copy(model, processor, root / f"t{i}_sharded", seed=i, sharded=True)
    return root, base, tuned


def _soup(root, out, alpha: float, suffix: str = ""):
    """make_soup of t1 and t2 (`suffix`: "_sharded" for the sharded copies) from their base."""
    inputs = [str(root / f"t{i}{suffix}") for i in (1, 2)]
    return make_soup(
        SoupConfig(inputs=inputs, base=str(root / f"base{suffix}"), alpha=alpha, out_dir=str(out))
    )


def _loaded(path):
    model, _ = build_backbone(BackboneConfig(name_or_path=str(path)))
    return {n: p.detach() for n, p in model.named_parameters()}


def test_soup_is_the_start_plus_the_scaled_mean_update(backbones, tmp_path):
    root, base, tuned = backbones
    out = _soup(root, tmp_path / "soup", 1.5)
    got = _loaded(out)  # through the backbone factory, as svla-train / svla-spatial-eval load it
    assert set(got) == set(base)
    for n, b in base.items():
        want = b + 1.5 * ((tuned[0][n] - b) + (tuned[1][n] - b)) / 2
        torch.testing.assert_close(got[n], want, rtol=0, atol=1e-6, msg=f"tensor {n}")
    # the soup differs from every input (it is not a copy of one of them)
    assert all(not torch.equal(got[n], t[n]) for t in tuned for n in list(base)[:3])
    manifest = json.loads((out / SOUP_MANIFEST).read_text())
    assert manifest["alpha"] == 1.5 and manifest["base"]["path"] == str((root / "base").resolve())
    hashes = [i["weights_sha256"] for i in manifest["inputs"]]
    assert len(set(hashes + [manifest["base"]["weights_sha256"]])) == 3
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()


def test_uniform_soup_without_a_base_is_the_mean(backbones, tmp_path):
    root, base, tuned = backbones
    out = make_soup(SoupConfig(inputs=[str(root / "t1"), str(root / "t2")], out_dir=str(tmp_path / "soup")))
    got = _loaded(out)
    for n in base:
        torch.testing.assert_close(got[n], (tuned[0][n] + tuned[1][n]) / 2, rtol=0, atol=1e-6)


def test_sharded_inputs_give_a_sharded_soup_with_the_same_weights(backbones, tmp_path):
    root, base, _ = backbones
    single = _soup(root, tmp_path / "single", 2.0)
    sharded = _soup(root, tmp_path / "sharded", 2.0, suffix="_sharded")
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1 and shards == sorted(p.name for p in (root / "t1_sharded").glob("*.safetensors"))
    assert (sharded / "model.safetensors.index.json").is_file()
    a, b = _loaded(single), _loaded(sharded)
    for n in base:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=0)


def test_cli_runs_from_the_composed_config(backbones, tmp_path):
    root, base, tuned = backbones
    cfg = compose(
        "soup",
        [f"inputs=[{root / 't1'}]", f"base={root / 'base'}", "alpha=0.5", f"out_dir={tmp_path / 's'}"],
        schema=SoupConfig,
    )
    got = _loaded(run(cfg))
    n = next(iter(base))
    torch.testing.assert_close(got[n], base[n] + 0.5 * (tuned[0][n] - base[n]), rtol=0, atol=1e-6)


def test_bad_inputs_fail_naming_the_problem_and_write_nothing(backbones, tmp_path):
    root, _, _ = backbones
    out = tmp_path / "soup"
    other, proc = build_backbone(BackboneConfig(name_or_path="tiny_5m"))
    save_backbone(other, proc, tmp_path / "other_arch")
    with pytest.raises(ConfigError, match="not fine-tunes of one backbone|different tensors"):
        make_soup(SoupConfig(inputs=[str(root / "t1"), str(tmp_path / "other_arch")], out_dir=str(out)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a Qwen2.5-VL backbone directory.*empty"):
        make_soup(SoupConfig(inputs=[str(root / "t1"), str(tmp_path / "empty")], out_dir=str(out)))
    with pytest.raises(ValueError, match="alpha=2.0 .*set base="):
        SoupConfig(inputs=["a"], alpha=2.0)
    with pytest.raises(ValueError, match="alpha=nan"):
        SoupConfig(inputs=["a"], base="b", alpha=float("nan"))
    with pytest.raises(ValueError, match="inputs is empty"):
        SoupConfig()
    assert not out.exists()
    # a NaN in one input is refused, not averaged into the soup
    model, proc = build_backbone(BackboneConfig(name_or_path=str(root / "t1")))
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    save_backbone(model, proc, tmp_path / "nan")
    with pytest.raises(ConfigError, match="not finite"):
        make_soup(SoupConfig(inputs=[str(root / "t1"), str(tmp_path / "nan")], out_dir=str(out)))
    assert not out.exists() and not list(tmp_path.glob(".soup.tmp-*"))
    shutil.copytree(root / "t2", tmp_path / "truncated")
    weights = tmp_path / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ConfigError, match="truncated/model.safetensors is not a readable safetensors file"):
        make_soup(SoupConfig(inputs=[str(root / "t1"), str(tmp_path / "truncated")], out_dir=str(out)))
    out.mkdir()
    with pytest.raises(ConfigError, match="overwrite=true"):
        make_soup(SoupConfig(inputs=[str(root / "t1")], out_dir=str(out)))


def test_soup_tensor_of_bf16_inputs_matches_a_float64_reference():
    from spatial_backbone.soup import soup_tensor

    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 32, generator=g).bfloat16()
    tuned = [
        (base.double() + 0.01 * torch.randn(64, 32, generator=g, dtype=torch.float64)).bfloat16()
        for _ in range(8)
    ]
    got = soup_tensor("w", base, iter(tuned), alpha=2.0)
    want = base.double() + 2.0 * (torch.stack([t.double() for t in tuned]).mean(0) - base.double())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), want.bfloat16().double(), rtol=0, atol=1e-2)
    f32 = [t.float() for t in tuned]
    kept = [t.clone() for t in f32]
    soup_tensor("w", None, iter(f32), alpha=1.0)
    assert all(torch.equal(a, b) for a, b in zip(f32, kept, strict=True))  # the inputs are not summed into
    ids = torch.arange(4)
    assert torch.equal(soup_tensor("ids", None, iter([ids, ids.clone()]), 1.0), ids)
    with pytest.raises(ConfigError, match="non-floating tensor 'ids' differs"):
        soup_tensor("ids", None, iter([ids, ids + 1]), 1.0)
