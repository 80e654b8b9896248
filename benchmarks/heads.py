"""Time per action of each action head at H=8 on the same tiny backbone (batch 1, two 112x112 cameras), and
the speed-up of the parallel heads over token-by-token `action_tokens` decoding. One run, medians, ratios.

    .venv/bin/python benchmarks/heads.py [--reps 30] [--chunk 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vla.config import HeadConfig, PolicyConfig  # noqa: E402
from vla.heads import HEADS  # noqa: E402
from vla.policy import SpatialVLAPolicy  # noqa: E402

S, A = 9, 4
STATS = {
    "observation.state": {"mean": [0.0] * S, "std": [1.0] * S, "q01": [-1.0] * S, "q99": [1.0] * S},
    "action": {"mean": [0.0] * A, "std": [1.0] * A, "q01": [-1.0] * A, "q99": [1.0] * A},
}


def _obs(rng):
    return {
        "pixels": {c: rng.integers(0, 255, (1, 112, 112, 3), dtype=np.uint8) for c in ("front", "wrist")},
        "agent_pos": rng.normal(size=(1, S)).astype(np.float32),
        "instruction": ["put the leftmost cube on the plate"],
    }


def time_per_action(head: str, chunk: int, reps: int) -> float:
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(
        PolicyConfig(head=HeadConfig(name=head), chunk_size=chunk, n_action_steps=chunk), STATS
    ).eval()
    rng = np.random.default_rng(0)
    times = []
    for i in range(reps + 3):
        obs = _obs(rng)
        t = time.perf_counter()
        policy.predict_action_chunk(obs)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return statistics.median(times) / chunk


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--chunk", type=int, default=8)
    args = p.parse_args()
    rows = {h: time_per_action(h, args.chunk, args.reps) for h in sorted(HEADS)}
    print(f"H={args.chunk}, A={A}, batch 1, tiny_1m, threads={torch.get_num_threads()}")
    print(f"{'head':<15}{'ms / action':>12}{'ms / chunk':>12}")
    for h, t in rows.items():
        print(f"{h:<15}{t * 1e3:>12.2f}{t * args.chunk * 1e3:>12.1f}")
    base = rows["action_tokens"]
    for h in ("l1_chunk", "flow_matching"):
        print(f"speed-up {h} over action_tokens: x{base / rows[h]:.1f} per action")


if __name__ == "__main__":
    main()
