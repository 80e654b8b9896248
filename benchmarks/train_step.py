"""A VLA training step split into data wait (LeRobot loading + video decoding) and compute (forward, backward,
optimizer), measured by the real `svla-train` loop. Records a small lift dataset first unless --dataset is
given.

    .venv/bin/python benchmarks/train_step.py [--dataset outputs/datasets/svla_Lift-v0 --repo-id local/...]
        [--steps 40] [--batch-size 16] [--num-workers 0] [--head l1_chunk]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from envs.hydra_utils import compose  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=None)
    p.add_argument("--repo-id", default="local/bench_lift")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--head", default="l1_chunk")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="svla-bench-"))
    root = args.dataset
    if root is None:
        from envs.record import RecordConfig, record

        root = str(tmp / "lift")
        record(
            compose(
                "record",
                ["env=lift", "episodes=10", f"root={root}", f"repo_id={args.repo_id}", "progress=false"],
                schema=RecordConfig,
            )
        )
    from vla.train import train
    from vla.train_config import TrainConfig

    cfg = compose(
        "train",
        [
            f"dataset.root={root}",
            f"dataset.repo_id={args.repo_id}",
            f"head={args.head}",
            f"steps={args.steps}",
            f"batch_size={args.batch_size}",
            f"save_every={args.steps}",
            f"num_workers={args.num_workers}",
            f"output_dir={tmp / 'train'}",
            "progress=false",
        ],
        schema=TrainConfig,
    )
    s = train(cfg)
    total = s["data_wait_s"] + s["compute_s"]
    print(f"{args.steps} steps, batch {args.batch_size}, head {args.head}, workers {args.num_workers}")
    print(
        f"data wait {s['data_wait_s'] / args.steps * 1e3:.1f} ms/step ({s['data_wait_s'] / total:.0%}), "
        f"compute {s['compute_s'] / args.steps * 1e3:.1f} ms/step ({s['compute_s'] / total:.0%})"
    )


if __name__ == "__main__":
    main()
