"""Paired comparison of two policies' `svla-eval` runs on the same episode seeds, task by task and pooled.

Reads each run's `<task>/results.json` (per-episode `records`: seed and success), pairs the episodes of the
two policies by (task, seed), and prints per task: each policy's successes with a Wilson 95% interval, the
difference and its paired Newcombe 95% interval (`vla.stats.paired_newcombe_interval`); then the suite mean
(tasks weighted equally, as the README's tables) and the difference pooled over every paired episode.

    .venv/bin/python benchmarks/suite_compare.py BASE_DIRS NEW_DIRS [--tasks lift reach push pick_place stack]

BASE_DIRS / NEW_DIRS: one `svla-eval` output root per task set, or several joined by commas (e.g. the first 50
seeds and the next 50, `evals/p16k,evals/p16k_s50`): their episodes are pooled; a seed seen twice is an error.
Only seeds both sides ran are compared; the count of the others is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from vla.stats import paired_newcombe_interval, wilson_interval  # noqa: E402

TASKS = ["lift", "reach", "push", "pick_place", "stack"]


def load(dirs: str, tasks: list[str]) -> dict[str, dict[int, bool]]:
    """Success by seed for each task, pooled over the comma-separated `svla-eval` output roots."""
    out: dict[str, dict[int, bool]] = {t: {} for t in tasks}
    for d in dirs.split(","):
        for t in tasks:
            path = Path(d) / t / "results.json"
            if not path.is_file():
                raise SystemExit(
                    f"{path} not found: pass svla-eval output roots that hold <task>/results.json"
                )
            records = json.loads(path.read_text()).get("records")
            if not records:
                raise SystemExit(
                    f"{path} has no per-episode 'records' (written by svla-eval since session 13)"
                )
            for r in records:
                if r["seed"] in out[t]:
                    raise SystemExit(
                        f"{path} repeats seed {r['seed']} of {t} from an earlier run: pool disjoint seeds"
                    )
                out[t][r["seed"]] = bool(r["success"])
    return out


def compare(base: dict[str, dict[int, bool]], new: dict[str, dict[int, bool]]) -> dict[str, dict]:
    """Per task and pooled ('all'): n, successes and rates of both, difference and its paired interval."""
    rows: dict[str, dict] = {}
    pooled_a: list[bool] = []
    pooled_b: list[bool] = []
    for t in base:
        seeds = sorted(set(base[t]) & set(new[t]))
        if not seeds:
            raise SystemExit(f"{t}: the two sides share no episode seed; evaluate both with the same seed=")
        a, b = [base[t][s] for s in seeds], [new[t][s] for s in seeds]
        pooled_a += a
        pooled_b += b
        rows[t] = _row(a, b) | {"unpaired": len(set(base[t]) ^ set(new[t]))}
    rows["all"] = _row(pooled_a, pooled_b) | {
        "mean_base": sum(rows[t]["base"] for t in base) / len(base),
        "mean_new": sum(rows[t]["new"] for t in base) / len(base),
    }
    return rows


def _row(a: list[bool], b: list[bool]) -> dict:
    n, ka, kb = len(a), sum(a), sum(b)
    lo, hi = paired_newcombe_interval(b, a)
    return {
        "n": n,
        "k_base": ka,
        "k_new": kb,
        "base": ka / n,
        "new": kb / n,
        "base_ci": wilson_interval(ka, n),
        "new_ci": wilson_interval(kb, n),
        "diff": (kb - ka) / n,
        "diff_ci": (lo, hi),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--tasks", nargs="+", default=TASKS)
    args = p.parse_args()
    rows = compare(load(args.base, args.tasks), load(args.new, args.tasks))

    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    def ci(c: tuple[float, float]) -> str:
        return f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]"

    print(f"{'task':<12}{'n':>5}{'base %':>8}{'':>14}{'new %':>8}{'':>14}{'new - base':>12}  paired 95%")
    for t, r in rows.items():
        if t == "all":
            continue
        b_ci = f"[{100 * r['base_ci'][0]:.0f}, {100 * r['base_ci'][1]:.0f}]"
        n_ci = f"[{100 * r['new_ci'][0]:.0f}, {100 * r['new_ci'][1]:.0f}]"
        extra = f"  ({r['unpaired']} unpaired seeds left out)" if r["unpaired"] else ""
        print(
            f"{t:<12}{r['n']:>5}{pct(r['base']):>8}{b_ci:>14}{pct(r['new']):>8}{n_ci:>14}"
            f"{100 * r['diff']:>+12.1f}  {ci(r['diff_ci'])}{extra}"
        )
    r = rows["all"]
    print(
        f"suite mean (tasks equally weighted): base {pct(r['mean_base'])}, new {pct(r['mean_new'])}; "
        f"pooled over {r['n']} paired episodes: {100 * r['diff']:+.1f} points {ci(r['diff_ci'])}"
    )


if __name__ == "__main__":
    main()
