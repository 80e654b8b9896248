"""Backbone speed on this machine: forward+backward of each tiny preset on one 112x112 image + 64 text tokens,
and tokens/s of greedy generation. Prints medians measured in one run and the ratio between presets.

    .venv/bin/python benchmarks/backbone.py [--reps 20] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import build_backbone
from spatial_backbone.presets import PRESETS
from spatial_backbone.smoke import synthetic_image


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    rows = {name: bench(name, args.reps, args.new_tokens) for name in PRESETS}
    print(f"threads={torch.get_num_threads()}  input: one 112x112 image (16 visual tokens) + 64 text tokens")
    print(f"{'preset':<10}{'params (M)':>12}{'fwd+bwd (ms)':>15}{'greedy tok/s':>15}")
    for name, r in rows.items():
        print(f"{name:<10}{r['params_M']:>12.2f}{r['fwd_bwd_ms']:>15.1f}{r['gen_tok_s']:>15.1f}")
    if {"tiny_1m", "tiny_5m"} <= rows.keys():
        a, b = rows["tiny_1m"], rows["tiny_5m"]
        print(
            f"ratio tiny_5m/tiny_1m: fwd+bwd time x{b['fwd_bwd_ms'] / a['fwd_bwd_ms']:.2f}, "
            f"generation speed x{b['gen_tok_s'] / a['gen_tok_s']:.2f}"
        )


if __name__ == "__main__":
    main()
