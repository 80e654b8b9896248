"""Is the motion learnable from positions, and how many samples does it take? The motion decoder alone.

Builds the embedded-default VLA with the motion decoder (`head.kwargs.motion=true`, `vla.heads.motion`) for a
dataset, trains ONLY the decoder on image-free frames (`vla.motion_data.MotionFrames`: state, true target/goal
positions, action chunk, instruction; `policy._motion_loss`, the loss `svla-train motion_batch=N` adds) for
each budget `STEPSxBATCH`, saves the policy with `save_policy` and rolls it out with `svla-eval`'s library
function under `oracle_grounding=true` (the decoder reads the simulator's true positions, as it trained). The
backbone and grounding head stay at their initialization: their output is replaced by the oracle.

The success rate against the number of training samples (steps x batch) is what the motion needs once
perception is solved. Session 16, PickPlace from 600 demonstrations (`full2/pick_place`), 30 episodes:
1000x16 -> 3% (motion_l1 0.259), 4000x64 -> 90% [74, 97] (0.132), 4000x256 -> 87% [70, 95] (0.113).
On five tasks at once (session 17): 0% on PickPlace and Stack at width 256 (`head.kwargs.motion_hidden=256`),
100% at the default 1024 (README, sessions 16-17). Printed per budget: samples, final motion_l1, success with
its Wilson 95% interval, training seconds.

    svla-record env=pick_place episodes=600 seed=2000000 root=D repo_id=local/pick_place
    .venv/bin/python benchmarks/motion_probe.py --dataset D --env pick_place \
        --budgets 1000x16 4000x64 4000x256 --episodes 30
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import torch  # noqa: E402

from envs.hydra_utils import compose  # noqa: E402


def parse_budget(text: str) -> tuple[int, int]:
    try:
        steps, batch = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--budgets entry {text!r} is not STEPSxBATCH (e.g. 4000x256)") from None
    if steps < 1 or batch < 1:
        raise SystemExit(f"--budgets entry {text!r}: steps and batch must be >= 1")
    return steps, batch


def train_decoder(policy, frames, steps: int, batch: int, lr: float, seed: int) -> float:
    """AdamW + cosine on the motion decoder's parameters only; returns the mean motion_l1 of the last 100
    steps."""
    params = list(policy.head.motion.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    tail: collections.deque[float] = collections.deque(maxlen=100)
    for _ in range(steps):
        loss, metrics = policy._motion_loss(frames.sample(batch, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tail.append(metrics["motion_l1"])
    return sum(tail) / len(tail)


def probe(args) -> list[dict]:
    from vla.checkpoint import init_policy_from, save_policy
    from vla.data import open_dataset
    from vla.evaluate import EvalConfig, evaluate
    from vla.motion_data import MotionFrames
    from vla.policy import SpatialVLAPolicy
    from vla.train import policy_stats
    from vla.train_config import TrainConfig

    root = Path(args.dataset).resolve()
    cfg = compose(
        "train",
        [f"dataset.root={root}", f"dataset.repo_id=local/{root.name}", "head=l1_chunk"]
        + ["head.kwargs.motion=true", *args.overrides],
        schema=TrainConfig,
    )
    dataset = open_dataset(cfg.dataset, cfg.policy.chunk_size)
    frames = MotionFrames(dataset, cfg.policy.chunk_size)
    stats = policy_stats(dataset)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.budgets:
            steps, batch = parse_budget(text)
            torch.manual_seed(args.seed)
            if cfg.init_from:  # e.g. a trained VLA's backbone: its word embeddings make the task code
                policy = init_policy_from(cfg.init_from, cfg.policy, stats, device=cfg.policy.backbone.device)
            else:
                policy = SpatialVLAPolicy(cfg.policy, stats)
            t0 = time.perf_counter()
            l1 = train_decoder(policy, frames, steps, batch, args.lr, args.seed)
            seconds = time.perf_counter() - t0
            ckpt = save_policy(policy, Path(tmp) / text)
            for env in args.env:
                out = Path(args.output_dir or tmp) / f"{env}_{text}"
                ecfg = compose(
                    "eval",
                    [
                        f"checkpoint={ckpt}",
                        f"env={env}",
                        f"episodes={args.episodes}",
                        f"num_envs={args.num_envs}",
                        f"output_dir={out}",
                        "oracle_grounding=true",
                        "videos=0",
                        "progress=false",
                    ],
                    schema=EvalConfig,
                )
                r = evaluate(ecfg)
                row = {
                    "env": env,
                    "budget": text,
                    "samples": steps * batch,
                    "frames": len(frames),
                    "motion_l1": round(l1, 4),
                    "success": r["success_rate"],
                    "wilson95": r["wilson95"],
                    "episodes": r["episodes"],
                    "train_s": round(seconds, 1),
                }
                rows.append(row)
                lo, hi = row["wilson95"]
                print(
                    f"{env:<11} {text:>9} samples {row['samples']:>8} motion_l1 {l1:.3f} "
                    f"success {row['success']:.0%} [{lo:.0%}, {hi:.0%}] train {seconds:.0f}s",
                    flush=True,
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="a LeRobot dataset recorded by svla-record (our suite)")
    ap.add_argument("--env", nargs="+", required=True, help="tasks to roll out (conf/env/), e.g. pick_place")
    ap.add_argument("--budgets", nargs="+", default=["1000x16", "4000x64", "4000x256"])
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--num-envs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output-dir", default="", help="keep each budget's eval results here")
    ap.add_argument("--json", default="", help="write the rows here")
    ap.add_argument("overrides", nargs="*", help="svla-train overrides for the policy (e.g. chunk_size=8)")
    args = ap.parse_args()
    rows = probe(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
