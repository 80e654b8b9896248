"""How precisely does a policy approach the object it grasps? The gripper's offset from the target's centre at
the first step the policy commands "close", over held-out episodes of one task (seeds from 100000).

With `--oracle` the decoder reads the true target/goal positions (`svla-eval oracle_grounding=true`), so the
offset measures the decoder's motion alone, not whether it found the named object. Session 14: 1.2 cm on Lift
against 2.4-2.6 cm on PickPlace / Stack for the same checkpoint.

    .venv/bin/python benchmarks/grasp_offsets.py --checkpoint R/checkpoints/step_0004000 --task pick_place \
        [--episodes 20] [--oracle]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import numpy as np  # noqa: E402
import torch  # noqa: E402

from envs.hydra_utils import compose  # noqa: E402
from vla.checkpoint import load_policy  # noqa: E402
from vla.evaluate import EvalConfig  # noqa: E402


def grasp_offsets(checkpoint: str, task: str, episodes: int, oracle: bool, seed: int = 100_000) -> np.ndarray:
    """[N, 3] gripper minus target position (metres) at each episode's first "close" command (episodes that
    never close are left out)."""
    cfg = compose("eval", [f"checkpoint={checkpoint}", f"env={task}"], schema=EvalConfig)
    env = cfg.env.make()
    policy = load_policy(Path(checkpoint)).eval()
    policy.oracle_grounding = oracle
    offsets = []
    try:
        for s in range(seed, seed + episodes):
            obs, info = env.reset(seed=s)
            policy.reset()
            for _ in range(cfg.env.max_episode_steps):
                batch = {
                    "pixels": {k: v[None] for k, v in obs["pixels"].items()},
                    "agent_pos": obs["agent_pos"][None],
                    "instruction": [obs["instruction"]],
                }
                if oracle:
                    batch["privileged_state"] = info["privileged_state"][None]
                action = np.asarray(policy.select_action(batch))[0]
                if action[-1] > 0:  # gripper: -1 open, +1 closed
                    offsets.append(obs["agent_pos"][:3] - info["privileged_state"][:3])
                    break
                obs, _, term, trunc, info = env.step(action.astype(np.float32))
                if term or trunc:
                    break
    finally:
        env.close()
    return np.asarray(offsets).reshape(-1, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--task", default="pick_place")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--oracle", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    off = grasp_offsets(args.checkpoint, args.task, args.episodes, args.oracle) * 100  # cm
    print(f"{args.task}: {len(off)} of {args.episodes} episodes closed the gripper")
    if len(off):
        print(f"gripper - target at close (cm): mean {off.mean(0).round(2)}, std {off.std(0).round(2)}")
        print(f"distance in the table plane (cm): mean {np.linalg.norm(off[:, :2], axis=1).mean():.2f}")


if __name__ == "__main__":
    main()
