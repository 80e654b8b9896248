"""SFT throughput: packed rows vs padded batches (tokens/s and padding fraction), one process, one thread.

    .venv/bin/python benchmarks/sft_packing.py                       # default dataset, tiny_1m
    .venv/bin/python benchmarks/sft_packing.py --items 1000 --steps 10 --max-length 2048 --rows 2

Both modes run the real training step of `svla-sft` (`spatial_backbone.sft.train.AnswerLoss`: forward, loss
on answer tokens, backward, AdamW step) on the same items in the same shuffled order: `packed` puts several
items in each row (best-fit decreasing, attention isolated, per-item M-RoPE positions), `padded` puts one
item per row and pads each batch to its longest item. Tokens/s counts real (non-padding) tokens; padding is
the fraction of row slots that hold padding. Batches hold about the same number of real tokens in both modes
(`--rows` packed rows of `--max-length` tokens vs as many items as fit on average). Targets (issue 6):
packed >= 2x the tokens/s of padded, packed padding <= 5%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from spatial_backbone.config import BackboneConfig  # noqa: E402
from spatial_backbone.data.io import load_split  # noqa: E402
from spatial_backbone.device import apply_runtime, resolve_runtime  # noqa: E402
from spatial_backbone.factory import build_backbone  # noqa: E402
from spatial_backbone.sft.config import PackingConfig  # noqa: E402
from spatial_backbone.sft.packing import BatchPlan, PackedCollator, VisionSpec, encode_items  # noqa: E402
from spatial_backbone.sft.train import AnswerLoss  # noqa: E402


def run_mode(model, items, collate: PackedCollator, plan: BatchPlan, args) -> dict[str, float]:
    """Time `args.steps` training steps (after one warm-up step) and return tokens/s and padding."""
    module = AnswerLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows_per_batch = args.rows if collate.packed else args.padded_rows
    batches = plan.batches(rows_per_batch)
    tokens = slots = 0
    elapsed = 0.0
    for k in range(args.steps + 1):
        batch = collate([[items[i] for i in row] for row in next(batches)])
        stats = batch.pop("stats")
        t0 = time.perf_counter()
        loss_sum, n = module(batch)
        (loss_sum / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k == 0:
            continue  # warm-up
        elapsed += time.perf_counter() - t0
        tokens += stats["tokens"]
        slots += stats["slots"]
    return {"tokens_per_s": tokens / elapsed, "padding": 1 - tokens / slots, "step_s": elapsed / args.steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="outputs/spatial_data")
    ap.add_argument("--backbone", default="tiny_1m")
    ap.add_argument("--items", type=int, default=2000, help="train items to sample batches from")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per mode")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=4, help="packed rows per batch")
    args = ap.parse_args()
    apply_runtime(resolve_runtime())
    model, processor = build_backbone(BackboneConfig(name_or_path=args.backbone))
    model.train()
    items = encode_items(processor, load_split(args.data, "train")[: args.items], args.data)
    items = [e for e in items if len(e) <= args.max_length]
    lengths = [len(e) for e in items]
    args.padded_rows = max(1, round(args.rows * args.max_length / np.mean(lengths)))
    spec = VisionSpec.from_processor(processor)
    results = {}
    for mode in ("padded", "packed"):
        packing = PackingConfig(mode=mode, max_length=args.max_length, rows=args.rows)
        plan = BatchPlan(lengths, [1.0] * len(items), packing, seed=0)
        collate = PackedCollator(spec, mode == "packed", processor.image_processor)
        results[mode] = run_mode(model, items, collate, plan, args)
    print(
        f"{args.backbone}, {len(items)} items (mean {np.mean(lengths):.0f} tokens), packed: {args.rows} "
        f"rows x "
        f"{args.max_length} tokens, padded: {args.padded_rows} items per batch, {args.steps} steps each"
    )
    print(f"{'mode':8} {'tokens/s':>10} {'padding':>8} {'step s':>8}")
    for mode, r in results.items():
        print(f"{mode:8} {r['tokens_per_s']:10.0f} {r['padding']:8.1%} {r['step_s']:8.3f}")
    ratio = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    print(
        f"packed / padded tokens/s: {ratio:.2f}x (target >= 2x); packed padding "
        f"{results['packed']['padding']:.1%} (target <= 5%)"
    )


if __name__ == "__main__":
    main()
