"""`report.md`: the report's tables and links, rendered from `report.json`'s numbers (nothing is computed
here that report.json lacks). Sections: headline (success per task and policy, the tuned-minus-untuned
difference), spatial accuracy per skill, grounding, robot success and differences per task, training losses,
rollout videos, time per stage, manifest. Links are relative to the run directory.
"""

from __future__ import annotations

from typing import Any

from pipeline.report import DIFFERENCE_METHOD, GOAL_POINTS, POLICY_LABELS

BACKBONE_LABELS = {"untuned": "untuned", "sft": "SFT", "rl": "SFT+RL"}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def rate_cell(r: dict[str, Any]) -> str:
    lo, hi = r["wilson95"]
    return f"{pct(r['success_rate'])}% [{pct(lo)}, {pct(hi)}]"


def diff_cell(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def headline(res: dict[str, Any]) -> list[str]:
    tasks = [*res["tasks"], "all"]
    rows = [[POLICY_LABELS[p], *(rate_cell(rows[t]) for t in tasks)] for p, rows in res["policies"].items()]
    lines = ["Success on held-out seeds, % [Wilson 95%]:", ""]
    lines += table(["policy", *tasks], rows) if rows else ["(no policy was evaluated)"]
    d = res["tuned_minus_untuned"]
    if d is None:
        return [*lines, "", "Tuned minus untuned: not available (a policy stage was skipped)."]
    pooled = d["all"]
    lo, hi = pooled["ci95"]
    pol = res["policies"]
    overlap = pol["vla_tuned"]["all"]["wilson95"][0] <= pol["vla_untuned"]["all"]["wilson95"][1]
    goal = 100 * pooled["difference"] >= GOAL_POINTS and not overlap
    lines += [
        "",
        f"**Tuned minus untuned success: {100 * pooled['difference']:+.1f} points, 95% CI "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]** over {pooled['episodes']} paired episodes "
        f"({DIFFERENCE_METHOD}). "
        f"The Wilson intervals of the two policies {'overlap' if overlap else 'do not overlap'}; the goal "
        f"(>= +{GOAL_POINTS} points with non-overlapping intervals, VST's LIBERO gain) is "
        f"{'met' if goal else 'not met'}.",
    ]
    return lines


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def spatial_section(res: dict[str, Any], grounding: bool) -> list[str]:
    spatial = res["spatial"]
    if not spatial:
        return ["(the spatial evaluation stages were skipped)"]
    cols = [(split, bb) for split in spatial for bb in spatial[split]]
    every = {s: v for split, bb in cols for s, v in spatial[split][bb]["skills"].items()}
    names = sorted(s for s, v in every.items() if (v["family"] == "grounding") == grounding)
    first = spatial[cols[0][0]][cols[0][1]]["skills"]
    header = ["skill", "family", f"chance ({cols[0][0]})"]
    header += [f"{BACKBONE_LABELS[bb]} ({split})" for split, bb in cols]
    rows = [
        [n, every[n]["family"], num(first.get(n, {}).get("chance"))]
        + [num(spatial[split][bb]["skills"].get(n, {}).get("score")) for split, bb in cols]
        for n in names
    ]
    families = (
        ["grounding"] if grounding else sorted({f for s, bb in cols for f in spatial[s][bb]["families"]})
    )
    for f in families:
        if f != "grounding" or grounding:
            rows.append(
                [f"*{f} mean*", "", ""] + [f"*{num(spatial[s][bb]['families'].get(f))}*" for s, bb in cols]
            )
    if not grounding:
        rows.append(
            ["**overall (all skills)**", "", ""] + [f"**{num(spatial[s][bb]['overall'])}**" for s, bb in cols]
        )
    return table(header, rows)


def robot_section(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, title in (
        ("tuned_minus_untuned", "tuned VLA - untuned VLA"),
        ("tuned_minus_act", "tuned VLA - ACT"),
    ):
        d = res[key]
        if d is None:
            continue
        rows = [[t, diff_cell(v), str(v["episodes"])] for t, v in d["tasks"].items()]
        rows.append(["**all**", f"**{diff_cell(d['all'])}**", str(d["all"]["episodes"])])
        lines += [
            "",
            f"{title}, points [95% CI, paired Newcombe]:",
            "",
            *table(["task", "difference", "pairs"], rows),
        ]
    return lines


def training_section(res: dict[str, Any]) -> list[str]:
    rows = [
        [POLICY_LABELS[p], str(t["steps"]), t.get("loss_name") or "", f"{t['final_loss']:.4f}"]
        for p, t in res["training"].items()
        if t.get("final_loss") is not None
    ]
    return table(["policy", "steps", "loss", "final loss"], rows) if rows else ["(no training stage ran)"]


def videos_section(videos: dict[str, Any]) -> list[str]:
    lines = []
    for p, tasks in videos.items():
        links = [f"[{t} {i + 1}]({v})" for t, vs in tasks.items() for i, v in enumerate(vs)]
        lines.append(f"- {POLICY_LABELS[p]}: " + (", ".join(links) if links else "(none recorded)"))
    return lines or ["(no rollouts)"]


def manifest_section(report: dict[str, Any]) -> list[str]:
    rows = []
    for name, m in report["manifest"].items():
        git = m.get("git") or {}
        commit = (git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")
        secs = report["timing"].get(name)
        rows.append(
            [
                name,
                f"`{(m.get('key') or '')[:12]}`",
                str(m.get("seed")),
                commit,
                m.get("started") or "",
                f"{secs:.1f}" if secs is not None else "",
                f"[stage.json]({m['record']})",
            ]
        )
    lines = table(
        ["stage", "key", "seed", "git commit", "started (UTC)", "wall time (s)", "config + manifest"], rows
    )
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    return [*lines, "", f"Versions: {versions}."]


def timing_section(report: dict[str, Any]) -> list[str]:
    t = {k: v for k, v in report["timing"].items() if v is not None}
    rows = [[k, f"{v:.1f}"] for k, v in t.items()] + [["**total**", f"**{sum(t.values()):.1f}**"]]
    return table(["stage", "wall time (s)"], rows)


def render(report: dict[str, Any], plots: dict[str, str]) -> str:
    res = report["results"]

    def img(name: str, alt: str) -> list[str]:
        return [f"![{alt}]({plots[name]})", ""] if name in plots else []

    git = report.get("git") or {}
    lines = [
        "# svla-pipeline report",
        "",
        f"Run directory `{report['run_dir']}`, seed {report['seed']}, tasks {', '.join(res['tasks'])}, git "
        f"{(git.get('commit') or '?')[:10]}. Every number below is in `report.json` (`results`).",
        "",
        "## Headline",
        "",
        *headline(res),
        "",
        *img("success", "success per task"),
        "## Spatial accuracy per skill (untuned / SFT / SFT+RL backbones)",
        "",
        "Scores on held-out items: accuracy for closed-set answers (unparseable ones get a seeded random "
        "guess), MRA for numbers, IoU for boxes; chance beside them.",
        "",
        *spatial_section(res, grounding=False),
        "",
        *img("spatial_skills", "spatial accuracy per skill"),
        "## Grounding",
        "",
        *spatial_section(res, grounding=True),
        "",
        *img("grounding", "grounding skills"),
        "## Robot success per task and differences",
        *robot_section(res),
        "",
        "## Training",
        "",
        *training_section(res),
        "",
        *img("training_curves", "training loss curves"),
        "## Rollout videos",
        "",
        *videos_section(report["videos"]),
        "",
        "## Time per stage",
        "",
        *timing_section(report),
        "",
        "## Manifest",
        "",
        *manifest_section(report),
    ]
    if report["not_run"]:
        lines += ["", f"Not run (skip=): {', '.join(report['not_run'])}."]
    return "\n".join(lines) + "\n"
