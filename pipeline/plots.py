"""The report's PNG plots (matplotlib, Agg), drawn from `report.json`'s numbers only.

- `spatial_skills.png`: per-skill score of the untuned / SFT / RL backbones, one panel per split, chance as
  black ticks (grounding skills excluded: they have their own plot).
- `grounding.png`: the grounding skills alone, same layout.
- `success.png`: success per task (and pooled) of the tuned VLA, the untuned VLA and ACT with Wilson 95% bars;
  beside it the tuned-minus-untuned difference per task with its paired Newcombe 95% interval.
- `training_curves.png`: training loss against step, one panel per policy (their losses differ in kind).
Files are written atomically; a plot whose data is missing (a skipped stage) is not drawn.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pipeline.cache import write_atomic

COLORS = {"untuned": "tab:gray", "sft": "tab:blue", "rl": "tab:green"}
POLICY_COLORS = {"vla_tuned": "tab:green", "vla_untuned": "tab:gray", "act": "tab:orange"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return write_atomic(path, buf.getvalue())


def _skill_panels(spatial: dict[str, Any], grounding: bool, title: str, path: Path) -> Path | None:
    plt = _plt()
    splits = list(spatial)
    every = {s: v for split in splits for bb in spatial[split].values() for s, v in bb["skills"].items()}
    names = sorted(s for s, v in every.items() if (v["family"] == "grounding") == grounding)
    if not names:
        return None
    fig, axes = plt.subplots(
        1, len(splits), figsize=(6 * len(splits), 0.42 * len(names) + 1.6), squeeze=False
    )
    for ax, split in zip(axes[0], splits, strict=True):
        bbs = list(spatial[split])
        h = 0.8 / len(bbs)
        centre = [i + 0.4 - h / 2 for i in range(len(names))]
        for j, bb in enumerate(bbs):
            skills = spatial[split][bb]["skills"]
            y = [i + j * h for i in range(len(names))]
            ax.barh(
                y, [skills.get(n, {}).get("score", 0.0) for n in names], h, color=COLORS.get(bb), label=bb
            )
        first = spatial[split][bbs[0]]["skills"]
        ticks = [
            (first[n]["chance"], c)
            for n, c in zip(names, centre, strict=True)
            if first.get(n, {}).get("chance") is not None
        ]  # open answers have no chance level
        ax.scatter(
            [x for x, _ in ticks],
            [y for _, y in ticks],
            marker="|",
            s=150,
            color="black",
            label="chance",
            zorder=3,
        )
        ax.set_yticks(centre, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("score (accuracy / MRA / IoU)")
        ax.set_title(f"{title}: {split} split")
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _success(report: dict[str, Any], path: Path) -> Path | None:
    plt = _plt()
    res = report["results"]
    policies = res["policies"]
    if not policies:
        return None
    tasks = [*res["tasks"], "all"]
    diff = res["tuned_minus_untuned"]
    fig, axes = plt.subplots(1, 2 if diff else 1, figsize=(13 if diff else 8, 4), squeeze=False)
    ax = axes[0][0]
    w = 0.8 / len(policies)
    for j, (p, rows) in enumerate(policies.items()):
        x = [i + j * w for i in range(len(tasks))]
        rate = [rows[t]["success_rate"] for t in tasks]
        err = [
            [r - rows[t]["wilson95"][0] for t, r in zip(tasks, rate, strict=True)],
            [rows[t]["wilson95"][1] - r for t, r in zip(tasks, rate, strict=True)],
        ]
        ax.bar(x, rate, w, yerr=err, capsize=3, color=POLICY_COLORS.get(p), label=p)
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(tasks))], tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (Wilson 95%)")
    ax.set_title("success per task on held-out seeds")
    ax.legend(fontsize=8)
    if diff:
        ax = axes[0][1]
        d = [diff["tasks"][t] if t != "all" else diff["all"] for t in tasks]
        mid = [r["difference"] * 100 for r in d]
        err = [
            [m - r["ci95"][0] * 100 for m, r in zip(mid, d, strict=True)],
            [r["ci95"][1] * 100 - m for m, r in zip(mid, d, strict=True)],
        ]
        ax.errorbar(range(len(tasks)), mid, yerr=err, fmt="o", capsize=4, color="black")
        ax.axhline(0, color="gray", lw=1)
        ax.axhline(8.6, color="tab:red", lw=1, ls="--", label="VST's +8.6 points")
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_ylabel("tuned - untuned success (points)")
        ax.set_title("difference, paired Newcombe 95% interval")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _curves(report: dict[str, Any], path: Path) -> Path | None:
    plt = _plt()
    training = {p: t for p, t in report["results"]["training"].items() if t.get("curve")}
    if not training:
        return None
    fig, axes = plt.subplots(1, len(training), figsize=(4.5 * len(training), 3.4), squeeze=False)
    for ax, (p, t) in zip(axes[0], training.items(), strict=True):
        steps, loss = zip(*t["curve"], strict=True)
        ax.plot(steps, loss, color=POLICY_COLORS.get(p))
        if min(loss) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(t.get("loss_name") or "loss")
        ax.set_title(p)
    fig.tight_layout()
    return _save(fig, path)


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Draw every plot the data allows into `out_dir`; returns name -> path."""
    spatial = report["results"]["spatial"]
    plots = {
        "spatial_skills": _skill_panels(spatial, False, "spatial skills", out_dir / "spatial_skills.png"),
        "grounding": _skill_panels(spatial, True, "grounding", out_dir / "grounding.png"),
        "success": _success(report, out_dir / "success.png"),
        "training_curves": _curves(report, out_dir / "training_curves.png"),
    }
    return {k: v for k, v in plots.items() if v is not None}
