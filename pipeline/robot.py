"""Robot stages: scripted demonstrations of each task -> one merged LeRobot dataset -> the tuned VLA, the
untuned VLA (trained alike) and the ACT peer baseline (its own budget) -> rollouts of each on the same
held-out seeds.

Layout under the run directory: `record/<task>/` (one LeRobot dataset per task), `merge/suite/` (the merged
dataset every policy trains on), `vla_tuned/`, `vla_untuned/`, `act/` (training run directories with
checkpoints), `eval_<policy>/<task>/` (results.json and MP4 videos).

Design: the two VLAs differ only in the backbone weights (`backbone.name_or_path=<run_dir>/rl/backbone` vs the
untuned preset: same head, seed, steps, batch order); ACT takes the VLA's steps, batch size and seed. Every
policy is evaluated with the same `eval` section, so episode i of a task has the same seed for all three,
which is what the paired difference interval in the report relies on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from envs.hydra_utils import CONF_DIR, to_config
from envs.record import RecordEnvConfig
from pipeline.stage import Context, Stage, derive

SUITE_REPO_ID = "local/suite"
CURVE_POINTS = 200  # loss-curve points kept in a training stage's record


def task_env(task: str, image_size: int) -> RecordEnvConfig:
    """The env of `conf/env/<task>.yaml`, at `image_size` pixels when nonzero."""
    env = to_config(OmegaConf.load(CONF_DIR / "env" / f"{task}.yaml"), RecordEnvConfig)
    return derive(env, image_size=image_size) if image_size else env


def suite_dataset(ctx: Context):
    from vla.train_config import DatasetConfig

    return DatasetConfig(repo_id=SUITE_REPO_ID, root=str(ctx.dir("merge") / "suite"))


def loss_curve(path: Path) -> list[list[float]]:
    """(step, loss) pairs of a `train_history.jsonl` (the last line per step wins: a resumed run may repeat
    steps after its checkpoint), thinned to at most CURVE_POINTS."""
    by_step: dict[int, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "loss" in row:
                by_step[int(row["step"])] = float(row["loss"])
    steps = sorted(by_step)
    stride = max(1, -(-len(steps) // CURVE_POINTS))
    keep = steps[::stride] + ([steps[-1]] if steps and (len(steps) - 1) % stride else [])
    return [[s, by_step[s]] for s in keep]


# -- demonstrations ------------------------------------------------------------------------------------------
def configure_record(ctx: Context):
    c = ctx.cfg
    return [
        derive(
            c.record,
            env=task_env(task, c.image_size),
            root=str(ctx.dir("record") / task),
            repo_id=f"local/{task}",
            overwrite=True,
            seed=c.seed,
        )
        for task in c.tasks
    ]


def run_record(cfgs, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Record each task; a resumed run keeps the datasets already published (they are written atomically)."""
    from envs.record import RECORDING_INFO, load_recording_info, record

    result, outputs = {}, []
    for task, cfg in zip(ctx.cfg.tasks, cfgs, strict=True):
        root = Path(cfg.root)
        if not (ctx.resume and (root / RECORDING_INFO).is_file()):
            record(cfg)
        info = load_recording_info(root)
        result[task] = {
            "env": cfg.env.id,
            "episodes": len(info["seeds"]),
            "frames": sum(info["episode_lengths"]),
            "expert_success_rate": info["expert_success_rate"],
            "seeds": [min(info["seeds"]), max(info["seeds"])],
        }
        outputs.append(root / RECORDING_INFO)
    return result, outputs


def configure_merge(ctx: Context):
    from envs.merge import MergeConfig

    roots = [str(ctx.dir("record") / task) for task in ctx.cfg.tasks]
    return MergeConfig(inputs=roots, root=suite_dataset(ctx).root, repo_id=SUITE_REPO_ID, overwrite=True)


def run_merge(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from envs.merge import merge

    root = merge(cfg)
    info = json.loads((root / "meta" / "info.json").read_text())
    result = {k: info.get(k) for k in ("total_episodes", "total_frames", "fps")}
    return result, [root / "meta" / "info.json"]


# -- training ------------------------------------------------------------------------------------------------
def configure_vla(tuned: bool):
    def configure(ctx: Context):
        c = ctx.cfg
        backbone = derive(c.backbone, name_or_path=str(ctx.dir("rl") / "backbone")) if tuned else c.backbone
        name = "vla_tuned" if tuned else "vla_untuned"
        return derive(
            c.vla,
            backbone=backbone,
            head=c.head,
            dataset=suite_dataset(ctx),
            output_dir=str(ctx.dir(name)),
            seed=c.seed,
        )

    return configure


def run_vla(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from vla.train import train

    s = train(derive(cfg, resume=ctx.resume))
    out = Path(cfg.output_dir)
    result = {
        "checkpoint": s["checkpoint"],
        "steps": s["steps"],
        "final_loss": s["final_loss"],
        "loss_name": f"{cfg.head.name} head loss",
        "curve": loss_curve(out / "train_history.jsonl"),
    }
    return result, [Path(s["checkpoint"]), out / "train_history.jsonl"]


def configure_act(ctx: Context):
    c = ctx.cfg
    return derive(
        c.act,
        dataset=suite_dataset(ctx),
        output_dir=str(ctx.dir("act")),
        seed=c.seed,
    )


def run_act(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from vla.baselines.act import train_act

    s = train_act(derive(cfg, resume=ctx.resume))
    out = Path(cfg.output_dir)
    curve = loss_curve(out / "train_history.jsonl") or [[r["step"], r["loss"]] for r in s.get("history", [])]
    result = {
        "checkpoint": s["checkpoint"],
        "steps": s.get("steps", cfg.steps),
        "final_loss": s.get("final_loss", curve[-1][1] if curve else None),
        "loss_name": "ACT loss (L1 + KL)",
        "curve": curve,
    }
    return result, [Path(s["checkpoint"])]


# -- rollouts ------------------------------------------------------------------------------------------------
EVALUATED = {"eval_tuned": "vla_tuned", "eval_untuned": "vla_untuned", "eval_act": "act"}


def configure_rollouts(stage: str):
    def configure(ctx: Context):
        c = ctx.cfg
        ckpt = ctx.result(EVALUATED[stage])["checkpoint"]
        return [
            derive(c.eval, checkpoint=ckpt, env=task_env(t, c.image_size), output_dir=str(ctx.dir(stage) / t))
            for t in c.tasks
        ]

    return configure


def run_rollouts(cfgs, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Roll the policy out on each task; a resumed run keeps the tasks already evaluated."""
    from vla.evaluate import evaluate

    result, outputs = {}, []
    for task, cfg in zip(ctx.cfg.tasks, cfgs, strict=True):
        path = Path(cfg.output_dir) / "results.json"
        r = json.loads(path.read_text()) if ctx.resume and path.is_file() else evaluate(cfg)
        result[task] = {
            "env": r["task"],
            "episodes": r["episodes"],
            "successes": r["successes"],
            "success_rate": r["success_rate"],
            "wilson95": r["wilson95"],
            "mean_length": r["mean_length"],
            "seeds": [e["seed"] for e in r["records"]],
            "outcomes": [bool(e["success"]) for e in r["records"]],
            "videos": [str(Path(v).resolve().relative_to(ctx.run_dir.resolve())) for v in r["videos"]],
        }
        outputs.append(path)
    return result, outputs


STAGES = [
    Stage("record", configure_record, run_record, resumable=True),
    Stage("merge", configure_merge, run_merge),
    Stage("vla_tuned", configure_vla(tuned=True), run_vla, resumable=True),
    Stage("vla_untuned", configure_vla(tuned=False), run_vla, resumable=True),
    Stage("act", configure_act, run_act, resumable=True),
    *(Stage(name, configure_rollouts(name), run_rollouts, resumable=True) for name in EVALUATED),
]
