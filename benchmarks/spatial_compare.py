"""Paired per-skill comparison of two `svla-spatial-eval` runs on the same items (e.g. SFT vs SFT + GRPO).

Reads each run's `predictions.jsonl`, keeps the items both runs scored, and prints per skill: the score of
each run, the difference and a paired bootstrap 95% interval of the difference (items resampled within the
skill, seeded). With `--trained` it also prints the mean over those skills (issue 6: RL must add >= 3 points
there) and the largest drop on any skill (no skill may drop by more than 2).

    .venv/bin/python benchmarks/spatial_compare.py BASE_DIR NEW_DIR [--trained distance counting ...]

BASE_DIR / NEW_DIR may each be several runs joined by commas (e.g. the same backbone evaluated on two
disjoint item sets, `test4k_eval,val4k_eval`): their items are pooled, for a finer per-skill measure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load(dirs: str) -> dict[str, dict]:
    """Predictions by item id of one svla-spatial-eval run, or of several (comma-separated) pooled."""
    out: dict[str, dict] = {}
    for d in dirs.split(","):
        path = Path(d) / "predictions.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path} not found: pass the out_dir of a svla-spatial-eval run")
        rows = {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
        shared = set(rows) & set(out)
        if shared:
            raise SystemExit(
                f"{d} repeats item ids of an earlier run (e.g. {sorted(shared)[:2]}): pool disjoint sets"
            )
        out.update(rows)
    return out


def compare(base: dict[str, dict], new: dict[str, dict], reps: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Per skill: n, base mean, new mean, diff and its paired bootstrap 95% interval."""
    common = sorted(set(base) & set(new))
    if not common:
        raise SystemExit("the two runs share no item ids: evaluate both on the same dataset and split")
    rng = np.random.default_rng(seed)
    out = {}
    for skill in sorted({base[i]["skill"] for i in common}):
        ids = [i for i in common if base[i]["skill"] == skill]
        b = np.array([base[i]["score"] for i in ids], dtype=float)  # [N]
        n = np.array([new[i]["score"] for i in ids], dtype=float)  # [N]
        d = n - b
        boot = d[rng.integers(0, len(d), (reps, len(d)))].mean(axis=1)  # [reps]
        out[skill] = {
            "n": len(ids),
            "base": b.mean(),
            "new": n.mean(),
            "diff": d.mean(),
            "ci": (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", help="svla-spatial-eval out_dir (or several, comma-separated, pooled)")
    p.add_argument("new", help="svla-spatial-eval out_dir (or several, comma-separated, pooled)")
    p.add_argument("--trained", nargs="*", default=[], help="skills the new run was trained on")
    args = p.parse_args()
    rows = compare(load(args.base), load(args.new))
    print(f"{'skill':<28}{'n':>5}{'base':>8}{'new':>8}{'diff':>8}   paired 95% CI")
    for s, r in rows.items():
        mark = " *" if s in args.trained else ""
        print(
            f"{s + mark:<28}{r['n']:>5}{r['base']:>8.3f}{r['new']:>8.3f}{r['diff'] * 100:>+8.1f}   "
            f"[{r['ci'][0] * 100:+.1f}, {r['ci'][1] * 100:+.1f}]"
        )
    macro = {k: np.mean([r[k] for r in rows.values()]) for k in ("base", "new")}
    print(
        f"macro over {len(rows)} skills: {macro['base']:.3f} -> {macro['new']:.3f} "
        f"({(macro['new'] - macro['base']) * 100:+.1f} points)"
    )
    if args.trained:
        missing = [s for s in args.trained if s not in rows]
        if missing:
            raise SystemExit(f"--trained skills {missing} are not in the evaluations")
        tb = np.mean([rows[s]["base"] for s in args.trained])
        tn = np.mean([rows[s]["new"] for s in args.trained])
        print(f"trained skills ({len(args.trained)}): {tb:.3f} -> {tn:.3f} ({(tn - tb) * 100:+.1f} points)")
    worst = min(rows, key=lambda s: rows[s]["diff"])
    print(f"largest drop: {worst} {rows[worst]['diff'] * 100:+.1f} points")


if __name__ == "__main__":
    main()
