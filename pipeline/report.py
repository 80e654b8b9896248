"""The report stage: gather every number the run produced into `report.json`, then render `report.md` and the
PNG plots from it (`markdown.py`, `plots.py`).

`report.json` has three parts: `results` (every reported number: spatial scores per skill, split and
backbone; success per task and policy with Wilson 95% intervals; the tuned-minus-untuned and tuned-minus-ACT
differences with paired Newcombe intervals; training losses; demonstrations), `timing` (wall time per stage)
and `manifest` (per stage: key, seed, git commit, versions, config file). Two runs with the same seed have
identical `results`; `timing` and `manifest` differ.

The difference interval: the policies are rolled out on the same seeds, so episode i of a task is a matched
pair; the interval is Newcombe's square-and-add method for paired proportions (`vla.stats`), over the episodes
of one task or, pooled, over all tasks' episodes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.cache import write_atomic
from pipeline.stage import Context, Stage
from vla.stats import paired_newcombe_interval, wilson_interval

BACKBONES = {"untuned": "spatial_eval_untuned", "sft": "spatial_eval_sft", "rl": "spatial_eval_rl"}
POLICIES = {"vla_tuned": "eval_tuned", "vla_untuned": "eval_untuned", "act": "eval_act"}
POLICY_LABELS = {"vla_tuned": "VLA, tuned backbone", "vla_untuned": "VLA, untuned backbone", "act": "ACT"}
DIFFERENCE_METHOD = (
    "paired Newcombe square-and-add interval (method 10 of Newcombe 1998, Stat Med 17:2635) over episodes "
    "with the same seeds"
)
GOAL_POINTS = 8.6  # VST's LIBERO gain from spatial tuning


def finite(x: float | None) -> float | None:
    """NaN (e.g. the chance level of open answers) as None, so report.json is strict JSON."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def spatial_results(ctx: Context) -> dict[str, Any]:
    """split -> backbone -> {overall, families, skills: {skill: {score, chance, n, family}}}."""
    families = ctx.result("spatial_data")["families"] if "spatial_data" in ctx.records else {}
    out: dict[str, Any] = {}
    for which, stage in BACKBONES.items():
        if stage not in ctx.records:
            continue
        for split, r in ctx.result(stage).items():
            skills = {
                s: {
                    "score": v["score"],
                    "chance": finite(v["chance"]),
                    "n": v["n"],
                    "family": families.get(s, "unknown"),
                }
                for s, v in r["skills"].items()
            }
            out.setdefault(split, {})[which] = {
                "overall": r["overall"]["score"],
                "families": {f: finite(v["score"]) for f, v in r["families"].items()},
                "skills": skills,
            }
    return out


def rate(successes: int, episodes: int) -> dict[str, Any]:
    return {
        "successes": successes,
        "episodes": episodes,
        "success_rate": successes / episodes if episodes else 0.0,
        "wilson95": list(wilson_interval(successes, episodes)),
    }


def policy_results(ctx: Context) -> dict[str, Any]:
    """policy -> task (and `all`, pooled) -> successes, episodes, rate, Wilson 95% interval."""
    out: dict[str, Any] = {}
    for policy, stage in POLICIES.items():
        if stage not in ctx.records:
            continue
        tasks = {t: rate(r["successes"], r["episodes"]) for t, r in ctx.result(stage).items()}
        pooled = rate(sum(r["successes"] for r in tasks.values()), sum(r["episodes"] for r in tasks.values()))
        out[policy] = tasks | {"all": pooled}
    return out


def difference(ctx: Context, first: str, second: str) -> dict[str, Any] | None:
    """first - second success per task and pooled, with the paired Newcombe interval."""
    a, b = POLICIES[first], POLICIES[second]
    if a not in ctx.records or b not in ctx.records:
        return None
    ra, rb = ctx.result(a), ctx.result(b)
    rows, all_a, all_b = {}, [], []
    for task in ra:
        if ra[task]["seeds"] != rb[task]["seeds"]:
            raise ValueError(f"{first} and {second} were rolled out on different seeds for {task}")
        xa, xb = ra[task]["outcomes"], rb[task]["outcomes"]
        all_a += xa
        all_b += xb
        rows[task] = _diff(xa, xb)
    return {
        "first": first,
        "second": second,
        "method": DIFFERENCE_METHOD,
        "tasks": rows,
        "all": _diff(all_a, all_b),
    }


def _diff(xa: list[bool], xb: list[bool]) -> dict[str, Any]:
    lo, hi = paired_newcombe_interval(xa, xb)
    return {"difference": (sum(xa) - sum(xb)) / len(xa), "ci95": [lo, hi], "episodes": len(xa)}


def training_results(ctx: Context) -> dict[str, Any]:
    keep = ("steps", "final_loss", "loss_name", "curve")
    return {p: {k: ctx.result(p).get(k) for k in keep} for p in POLICIES if p in ctx.records}


def build_report(ctx: Context) -> dict[str, Any]:
    r = ctx.records
    results = {
        "tasks": list(ctx.cfg.tasks),
        "spatial": spatial_results(ctx),
        "policies": policy_results(ctx),
        "tuned_minus_untuned": difference(ctx, "vla_tuned", "vla_untuned"),
        "tuned_minus_act": difference(ctx, "vla_tuned", "act"),
        "training": training_results(ctx),
        "demonstrations": ctx.result("record") if "record" in r else {},
    }
    videos = {
        p: {t: v["videos"][: ctx.cfg.report_videos] for t, v in ctx.result(s).items()}
        for p, s in POLICIES.items()
        if s in r
    }
    manifest = {
        name: {k: rec.get(k) for k in ("key", "output_hash", "seed", "git", "started", "finished", "resumed")}
        | {"record": f"{name}/stage.json"}
        for name, rec in r.items()
    }
    first = next(iter(r.values()), {})
    return {
        "run_dir": str(ctx.run_dir),
        "seed": ctx.cfg.seed,
        "results": results,
        "videos": videos,
        "timing": {name: rec.get("seconds") for name, rec in r.items()},
        "manifest": manifest,
        "versions": first.get("versions", {}),
        "git": first.get("git", {}),
        "not_run": [s for s in (*BACKBONES.values(), *POLICIES, *POLICIES.values()) if s not in r],
    }


def configure_report(ctx: Context) -> dict[str, Any]:
    c = ctx.cfg
    return {"tasks": list(c.tasks), "splits": list(c.spatial_eval_splits), "report_videos": c.report_videos}


def run_report(_, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from pipeline.markdown import render
    from pipeline.plots import write_plots

    report = build_report(ctx)
    plots = write_plots(report, ctx.dir("report"))
    md = write_atomic(
        ctx.run_dir / "report.md", render(report, {k: f"report/{p.name}" for k, p in plots.items()})
    )
    js = write_atomic(ctx.run_dir / "report.json", json.dumps(report, indent=1, allow_nan=False))
    summary = {"headline": report["results"]["tuned_minus_untuned"], "plots": sorted(plots)}
    return summary, [md, js, *plots.values()]


STAGES = [Stage("report", configure_report, run_report)]
