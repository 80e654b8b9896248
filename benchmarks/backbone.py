"""Backbone speed on this machine: forward+backward of each tiny preset on one 112x112 image + 64 text tokens,
and tokens/s of greedy generation. Prints medians measured in one run and the ratio between presets.
Also times the vision patch embedding as transformers' `Conv3d` against the matmul the factory runs it as
(`factory.patch_embed_as_matmul`), forward+backward at a VLA training batch (16 samples x 2 cameras x 64
patches) and forward at batch 1, interleaved, and prints the speed-up.

    .venv/bin/python benchmarks/backbone.py [--reps 20] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import torch  # noqa: E402

from spatial_backbone.config import BackboneConfig  # noqa: E402
from spatial_backbone.factory import build_backbone  # noqa: E402
from spatial_backbone.presets import PRESETS  # noqa: E402
from spatial_backbone.smoke import synthetic_image  # noqa: E402


def _inputs(processor, n_text_tokens: int):
    """One 112x112 image and exactly `n_text_tokens` text tokens after the vision block."""
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(images=[synthetic_image(112)], text=[prompt], return_tensors="pt")
    ids = inputs["input_ids"]
    extra = n_text_tokens - int((ids != processor.image_token_id).sum())
    if extra > 0:  # pad the text part with ordinary tokens up to the budget
        filler = torch.full((1, extra), processor.tokenizer.convert_tokens_to_ids("Ġthe"), dtype=ids.dtype)
        inputs["input_ids"] = torch.cat([ids, filler], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(filler)], dim=1
        )
    return inputs


def bench(name: str, reps: int, new_tokens: int) -> dict:
    model, processor = build_backbone(BackboneConfig(name_or_path=name))
    model.train()
    inputs = _inputs(processor, 64)
    times = []
    for i in range(reps + 3):
        t = time.perf_counter()
        loss = model(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i >= 3:  # warm-up excluded
            times.append(time.perf_counter() - t)
    model.eval()
    gen_times = []
    with torch.no_grad():
        for _ in range(max(3, reps // 4)):
            t = time.perf_counter()
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            gen_times.append(time.perf_counter() - t)
    return {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "fwd_bwd_ms": statistics.median(times) * 1e3,
        "gen_tok_s": new_tokens / statistics.median(gen_times),
    }


def patch_embed_speedup(reps: int, hidden: int = 64) -> dict[str, float]:
    """Median time of transformers' `Qwen2_5_VisionPatchEmbed.forward` (Conv3d) / the factory's matmul
    (`patch_embed_as_matmul`) on the same module and weights, per setting."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionPatchEmbed

    from spatial_backbone.factory import _matmul_patch_embed

    embed = Qwen2_5_VisionPatchEmbed(embed_dim=hidden)
    fns = (lambda x: Qwen2_5_VisionPatchEmbed.forward(embed, x), lambda x: _matmul_patch_embed(embed, x))
    out = {}
    for label, n, backward in (
        ("train fwd+bwd, 2048 patches", 2048, True),
        ("infer fwd, 128 patches", 128, False),
    ):
        x = torch.randn(n, 3 * 2 * 14 * 14)  # [N, C*T*P*P], as the image processor flattens patches
        ratios = []
        for i in range(reps + 3):
            t = []
            for fn in fns:
                start = time.perf_counter()
                with torch.set_grad_enabled(backward):
                    y = fn(x)  # [N, D]
                    if backward:
                        y.sum().backward()
                t.append(time.perf_counter() - start)
            if i >= 3:
                ratios.append(t[0] / t[1])
        out[label] = statistics.median(ratios)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    rows = {name: bench(name, args.reps, args.new_tokens) for name in PRESETS}
    print(f"threads={torch.get_num_threads()}  input: one 112x112 image (16 visual tokens) + 64 text tokens")
    print(f"{'preset':<14}{'params (M)':>12}{'fwd+bwd (ms)':>15}{'greedy tok/s':>15}")
    for name, r in rows.items():
        print(f"{name:<14}{r['params_M']:>12.2f}{r['fwd_bwd_ms']:>15.1f}{r['gen_tok_s']:>15.1f}")
    if {"tiny_1m", "tiny_5m"} <= rows.keys():
        a, b = rows["tiny_1m"], rows["tiny_5m"]
        print(
            f"ratio tiny_5m/tiny_1m: fwd+bwd time x{b['fwd_bwd_ms'] / a['fwd_bwd_ms']:.2f}, "
            f"generation speed x{b['gen_tok_s'] / a['gen_tok_s']:.2f}"
        )
    for label, ratio in patch_embed_speedup(args.reps).items():
        print(
            f"patch embedding, {label}: matmul x{ratio:.1f} faster than Conv3d (median per-repetition ratio)"
        )


if __name__ == "__main__":
    main()
