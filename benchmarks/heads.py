"""Time per action of each action head at H=8 on the same tiny backbone (batch 1, two 112x112 cameras), and
the speed-up of the parallel heads over token-by-token `action_tokens` decoding. One run, medians, ratios.

The heads are timed interleaved (every repetition times each head once on the same observation, in rotating
order), so a burst of load on this shared machine hits all heads alike instead of biasing whichever head was
being timed; the speed-up is the median of the per-repetition ratios.

Every head first runs the same backbone forward over the prompt (two images + instruction: the prefill);
the benchmark also times that forward alone (`prefill`, interleaved like the heads) and prints the ceiling it
sets: a head that costs nothing beyond the prefill is at most action_tokens / prefill times faster.

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


def _policy(head: str, chunk: int) -> SpatialVLAPolicy:
    torch.manual_seed(0)
    cfg = PolicyConfig(head=HeadConfig(name=head), chunk_size=chunk, n_action_steps=chunk)
    return SpatialVLAPolicy(cfg, STATS).eval()


def _prefill(policy: SpatialVLAPolicy):
    """The backbone forward over the prompt alone, as every head runs it (no query tokens, no head)."""

    def run(obs):
        with torch.inference_mode():
            return policy._features(
                policy._to_device(policy.processor(policy.processor.raw_from_env(obs))), False
            )

    return run


def times_per_action(heads: list[str], chunk: int, reps: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per action of each head (and of the shared `prefill`, per action of a chunk), one value per
    repetition, timed interleaved."""
    policies = {h: _policy(h, chunk) for h in heads}
    calls = {h: p.predict_action_chunk for h, p in policies.items()}
    calls["prefill"] = _prefill(policies["l1_chunk"])
    heads = [*heads, "prefill"]
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {h: [] for h in heads}
    for i in range(reps + warmup):
        obs = _obs(rng)
        for j in range(len(heads)):
            h = heads[(i + j) % len(heads)]  # rotate which head goes first
            t = time.perf_counter()
            calls[h](obs)
            if i >= warmup:
                times[h].append((time.perf_counter() - t) / chunk)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--chunk", type=int, default=8)
    args = p.parse_args()
    times = times_per_action(sorted(HEADS), args.chunk, args.reps)
    print(f"H={args.chunk}, A={A}, batch 1, tiny_1m, threads={torch.get_num_threads()}, {args.reps} reps")
    print(f"{'head':<15}{'ms / action':>12}{'ms / chunk':>12}")
    for h, ts in times.items():
        t = statistics.median(ts)
        print(f"{h:<15}{t * 1e3:>12.2f}{t * args.chunk * 1e3:>12.1f}")
    base = times["action_tokens"]
    for h in ("l1_chunk", "flow_matching"):
        ratios = sorted(b / t for b, t in zip(base, times[h], strict=True))
        q = len(ratios) // 4
        print(
            f"speed-up {h} over action_tokens: x{statistics.median(ratios):.1f} per action "
            f"(median of per-repetition ratios; quartiles x{ratios[q]:.1f}-x{ratios[-q - 1]:.1f})"
        )
    ceiling = statistics.median(b / t for b, t in zip(base, times["prefill"], strict=True))
    print(f"ceiling for any head that runs the prefill: x{ceiling:.1f} (action_tokens / prefill)")


if __name__ == "__main__":
    main()
