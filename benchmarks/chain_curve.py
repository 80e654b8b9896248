"""Learning curve of a chain of `svla-train` schedules (`init_from=` the previous run's last checkpoint):
success per task (Wilson 95%) and suite mean against cumulative VLA training steps (`svla-eval` outputs).

Each `--point` is `STEPS=DIR`, where DIR holds one `svla-eval` output directory per task (`DIR/<task>/
results.json`, as `svla-eval output_dir=DIR/<task>` writes). Prints a table and writes a PNG.

    .venv/bin/python benchmarks/chain_curve.py --out docs/figures/suite_perception_chain.png \
        --point 12000=/work/runs/evals/perc_p12k --point 16000=/work/runs/evals/perc_p16k
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from envs.tasks import TASKS as REGISTRY  # noqa: E402

TASKS = tuple(entry.name for entry in REGISTRY.values())  # our suite, in registry order


def read_point(spec: str) -> tuple[int, dict[str, dict]]:
    """`STEPS=DIR` -> (steps, {task: results.json})."""
    steps, sep, path = spec.partition("=")
    if not sep or not steps.isdigit():
        raise SystemExit(f"--point {spec!r} must be STEPS=DIR, e.g. 12000=/work/runs/evals/perc_p12k")
    results = {}
    for task in TASKS:
        f = Path(path) / task / "results.json"
        if not f.is_file():
            raise SystemExit(f"--point {spec!r}: no {f} (run svla-eval output_dir={Path(path) / task} first)")
        results[task] = json.loads(f.read_text())
    return int(steps), results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--point", action="append", required=True, help="STEPS=DIR (repeat, any order)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", default="suite, perception chain")
    args = p.parse_args()
    points = sorted(read_point(s) for s in args.point)

    print(f"{'steps':>7} " + " ".join(f"{t:>11}" for t in TASKS) + f" {'mean':>6}  episodes")
    for steps, res in points:
        rates = [res[t]["success_rate"] for t in TASKS]
        eps = sorted({res[t]["episodes"] for t in TASKS})
        row = " ".join(f"{r:>11.0%}" for r in rates)
        print(f"{steps:>7} {row} {100 * sum(rates) / len(rates):>5.1f}%  {eps}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = [s for s, _ in points]
    for task in TASKS:
        ys = [r[task]["success_rate"] for _, r in points]
        lo = [r[task]["wilson95"][0] for _, r in points]
        hi = [r[task]["wilson95"][1] for _, r in points]
        ax.plot(xs, ys, marker="o", label=task)
        ax.fill_between(xs, lo, hi, alpha=0.12)
    means = [sum(r[t]["success_rate"] for t in TASKS) / len(TASKS) for _, r in points]
    ax.plot(xs, means, color="black", linewidth=2.5, marker="s", label="mean")
    ax.axhline(0.7, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("VLA training steps (chained 4000-step schedules)")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.set_title(args.title)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
