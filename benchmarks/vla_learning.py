"""Learning curves of a VLA run: success rate (Wilson 95%) against training steps, per task.

Evaluates every checkpoint of a `svla-train` output directory on each task with `svla-eval`'s library function
(held-out seeds), and writes `learning_curve.json` + `learning_curve.png` into that directory.

    .venv/bin/python benchmarks/vla_learning.py --train-dir /work/runs/vla/lift_l1 --tasks lift --episodes 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from envs.hydra_utils import compose  # noqa: E402


def curve(
    train_dir: Path, tasks: list[str], episodes: int, num_envs: int, every: int, episodes_last: int = 0
) -> dict:
    """episodes_last > 0: that many episodes for the newest checkpoint (the reported number), `episodes` for
    the earlier points of the curve."""
    from vla.evaluate import EvalConfig, evaluate

    ckpts = sorted((train_dir / "checkpoints").glob("step_*"))
    ckpts = [c for c in ckpts if int(c.name.split("_")[1]) % every == 0] or ckpts
    rows = []
    for ckpt in ckpts:
        step = int(ckpt.name.split("_")[1])
        n = episodes_last if episodes_last and ckpt == ckpts[-1] else episodes
        for task in tasks:
            out = train_dir / "eval" / f"{ckpt.name}_{task}"
            cfg = compose(
                "eval",
                [
                    f"checkpoint={ckpt}",
                    f"env={task}",
                    f"episodes={n}",
                    f"num_envs={num_envs}",
                    f"output_dir={out}",
                    "videos=2",
                    "progress=false",
                ],
                schema=EvalConfig,
            )
            r = evaluate(cfg)
            rows.append(
                {
                    "step": step,
                    "task": task,
                    "success": r["success_rate"],
                    "wilson95": r["wilson95"],
                    "mean_length": r["mean_length"],
                    "episodes": r["episodes"],
                }
            )
            print(
                f"step {step:6d} {task:12s} success {r['success_rate']:.2f} "
                f"[{r['wilson95'][0]:.2f}, {r['wilson95'][1]:.2f}]",
                flush=True,
            )
    return {"train_dir": str(train_dir), "tasks": tasks, "episodes": episodes, "rows": rows}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for task in result["tasks"]:
        rows = [r for r in result["rows"] if r["task"] == task]
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["success"] for r in rows], marker="o", label=task)
        ax.fill_between(steps, [r["wilson95"][0] for r in rows], [r["wilson95"][1] for r in rows], alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.set_title(Path(result["train_dir"]).name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-dir", required=True, type=Path)
    p.add_argument("--tasks", nargs="+", default=["lift"])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--num-envs", type=int, default=2)
    p.add_argument("--every", type=int, default=1, help="evaluate checkpoints whose step is a multiple")
    p.add_argument("--episodes-last", type=int, default=0, help="newest checkpoint (0: --episodes)")
    args = p.parse_args()
    result = curve(args.train_dir, args.tasks, args.episodes, args.num_envs, args.every, args.episodes_last)
    (args.train_dir / "learning_curve.json").write_text(json.dumps(result, indent=1))
    plot(result, args.train_dir / "learning_curve.png")
    print(f"wrote {args.train_dir / 'learning_curve.json'} and learning_curve.png")


if __name__ == "__main__":
    main()
