"""Can the tiny backbone's image tokens learn what object they hold when that is their only loss?

`benchmarks/object_probe.py` found the VLA's tokens blind to object attributes even with the object probe in
its loss (README, session 19). This separates capacity from competition: it runs the perception pre-training
stage (`svla-train objective=perceive`, the same `vla.train.train`: a fresh backbone, `backbone.image_size`
as given, and the object probe trained on the object labels of `vla.object_labels` alone, binary
cross-entropy, AdamW at `--lr` for every module, warmup + cosine) for `--steps` batches of `--batch` frames
of a dataset recorded with `privileged.objects`, then scores the checkpoint with `object_probe.probe` on
`--frames` frames per task (tokens that hold an object) and prints the mean over tasks. High scores here and
chance in the VLA mean the other losses crowd the attributes out; chance here means the tower cannot learn
them at that resolution. The run's `checkpoints/last/backbone` starts a VLA
(`svla-train backbone.name_or_path=<out>/checkpoints/last/backbone`).

    .venv/bin/python benchmarks/vision_capacity.py --dataset /work/runs/datasets2/fresh5p5000 --steps 6000 \
        --lr 1e-3 --image-size 112 --out outputs/bench/perceive
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from benchmarks.grounding_probe import task_frames  # noqa: E402
from benchmarks.object_probe import group_slices, probe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="merged suite dataset root (recorded with objects)")
    ap.add_argument("--repo-id", default=None, help="its repo id (default local/<dir name>)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--backbone", default="tiny_1m", help="preset or checkpoint path")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=60, help="scored frames per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="outputs/bench/vision_capacity", help="the run's output_dir (resumes)")
    args = ap.parse_args()

    from envs.hydra_utils import compose
    from vla.data import open_dataset
    from vla.object_labels import RELATION_FLAGS
    from vla.train import train
    from vla.train_config import TrainConfig

    root = Path(args.dataset)
    repo_id = args.repo_id or f"local/{root.name}"
    lr = [f"optim.lr_{m}={args.lr}" for m in ("vision", "language", "head")]
    cfg = compose(
        "train",
        [
            f"dataset.root={root}",
            f"dataset.repo_id={repo_id}",
            "objective=perceive",
            "head=l1_chunk",
            "head.kwargs.pointer_pos=true",
            "head.kwargs.object_attrs=1.0",
            f"backbone={args.backbone}"
            if not Path(args.backbone).exists()
            else f"backbone.name_or_path={args.backbone}",
            f"backbone.image_size={args.image_size}",
            f"backbone.min_image_size={args.image_size}",
            *lr,
            f"steps={args.steps}",
            f"batch_size={args.batch}",
            f"save_every={max(1, args.steps // 4)}",
            f"seed={args.seed}",
            f"output_dir={args.out}",
            "resume=true",
            "progress=false",
        ],
        schema=TrainConfig,
    )
    summary = train(cfg)
    dataset = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    rows = probe(summary["checkpoint"], dataset, task_frames(root, args.frames, args.seed + 1), 50)
    keys = [*group_slices(), *RELATION_FLAGS]
    print(
        f"{args.backbone}, image {args.image_size} px, {args.steps} steps, lr {args.lr}: "
        "tokens holding an object (mean over tasks)"
    )
    print("  " + "  ".join(f"{k} {sum(m[k] for m in rows.values()) / len(rows):.2f}" for k in keys))
    print(f"backbone for svla-train backbone.name_or_path=: {Path(summary['checkpoint']) / 'backbone'}")


if __name__ == "__main__":
    main()
