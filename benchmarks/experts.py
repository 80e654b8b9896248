"""Scripted-expert success per task over seeded episodes (acceptance bar: >= 95% on every task).

Runs headless (`cameras=()`: no rendering) so 100 episodes per task take about a minute on one core.
Usage: `python benchmarks/experts.py [--episodes 100] [--tasks svla/Lift-v0 ...] [--seed 0]`
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
# As a script, this directory is first on sys.path, and `benchmarks/envs.py` would shadow the `envs` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402

import envs  # noqa: E402
from envs.experts import make_expert  # noqa: E402


def run_task(task_id: str, episodes: int, seed: int) -> dict:
    env = envs.make(task_id, cameras=())
    expert = make_expert(env)
    successes, lengths, failures = [], [], []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        expert.reset()
        success, steps = False, 0
        while True:
            _, _, terminated, truncated, info = env.step(expert.act(env))
            steps += 1
            success |= info["is_success"]
            if terminated or truncated:
                break
        successes.append(success)
        lengths.append(steps)
        if not success:
            failures.append(seed + ep)
    env.close()
    return {"success": float(np.mean(successes)), "mean_len": float(np.mean(lengths)), "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=list(envs.TASK_IDS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'task':<20} {'success':>8} {'mean len':>9} {'time s':>7}  failed seeds")
    for task_id in args.tasks:
        t0 = time.perf_counter()
        r = run_task(task_id, args.episodes, args.seed)
        dt = time.perf_counter() - t0
        print(f"{task_id:<20} {r['success']:>8.1%} {r['mean_len']:>9.1f} {dt:>7.1f}  {r['failures'][:12]}")


if __name__ == "__main__":
    main()
