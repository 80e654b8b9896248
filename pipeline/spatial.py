"""Spatial tuning stages: spatial data -> SFT -> RL (GRPO), and the per-skill spatial scores of the untuned,
SFT and RL backbones on the held-out splits.

Layout under the run directory: `spatial_data/data/` (the dataset), `sft/` (svla-sft's run directory,
tuned backbone in `sft/backbone`), `rl/` (svla-rl's, tuned backbone in `rl/backbone`),
`spatial_eval_<which>/<split>/` (results.json, predictions.jsonl, scores.png). SFT starts from the
pipeline's `backbone`, RL from the SFT output; every backbone keeps the untuned one's image size and runtime
settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.stage import Context, Stage, derive
from spatial_backbone.evaluation.cli import SpatialEvalConfig


def data_dir(ctx: Context) -> Path:
    return ctx.dir("spatial_data") / "data"


def tuned_backbone(ctx: Context, stage: str):
    """The pipeline's backbone config with the weights written by `stage` (`sft` or `rl`)."""
    return derive(ctx.cfg.backbone, name_or_path=str(ctx.dir(stage) / "backbone"))


# -- spatial data --------------------------------------------------------------------------------------------
def configure_data(ctx: Context):
    return derive(ctx.cfg.spatial_data, out_dir=str(data_dir(ctx)), overwrite=True, seed=ctx.cfg.seed)


def run_data(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from spatial_backbone.data.generate import generate
    from spatial_backbone.data.io import load_manifest

    out = generate(cfg)
    manifest = load_manifest(out)
    result = {
        "items": {s: c["items"] for s, c in manifest["splits"].items()},
        "families": {s: d.get("family", "unknown") for s, d in manifest["skills"].items()},
    }
    return result, [out / "manifest.json"]


# -- SFT -----------------------------------------------------------------------------------------------------
def configure_sft(ctx: Context):
    c = ctx.cfg
    return derive(
        c.sft,
        backbone=c.backbone,
        data=derive(c.sft.data, dir=str(data_dir(ctx))),
        output_dir=str(ctx.dir("sft")),
        seed=c.seed,
    )


def run_sft(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from spatial_backbone.sft.train import train

    s = train(derive(cfg, resume=ctx.resume))
    keep = ("steps", "final_loss", "tokens_per_s", "padding", "train_seconds")
    return {k: s[k] for k in keep} | {"backbone": s["backbone"]}, [Path(s["backbone"]) / "config.json"]


# -- RL (GRPO) -----------------------------------------------------------------------------------------------
def configure_rl(ctx: Context):
    c = ctx.cfg
    return derive(
        c.rl,
        backbone=tuned_backbone(ctx, "sft"),
        data_dir=str(data_dir(ctx)),
        output_dir=str(ctx.dir("rl")),
        seed=c.seed,
    )


def run_rl(cfg, ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    from spatial_backbone.rl.grpo import train_rl

    s = train_rl(derive(cfg, resume=ctx.resume))
    result = {k: s[k] for k in ("backbone", "steps", "items", "first", "last")}
    return result, [Path(s["backbone"]) / "config.json"]


# -- spatial evaluation --------------------------------------------------------------------------------------
BACKBONES = {  # stage -> where its backbone comes from
    "spatial_eval_untuned": lambda ctx: ctx.cfg.backbone,
    "spatial_eval_sft": lambda ctx: tuned_backbone(ctx, "sft"),
    "spatial_eval_rl": lambda ctx: tuned_backbone(ctx, "rl"),
}


def configure_eval(stage: str):
    def configure(ctx: Context) -> list[SpatialEvalConfig]:
        return [
            SpatialEvalConfig(
                backbone=BACKBONES[stage](ctx),
                data_dir=str(data_dir(ctx)),
                split=split,
                eval=ctx.cfg.spatial_eval,
                out_dir=str(ctx.dir(stage) / split),
            )
            for split in ctx.cfg.spatial_eval_splits
        ]

    return configure


def run_eval(cfgs: list[SpatialEvalConfig], ctx: Context) -> tuple[dict[str, Any], list[Path]]:
    """Score one backbone on each split; a resumed run keeps the splits already written."""
    from envs.hydra_utils import to_yaml
    from spatial_backbone.evaluation.cli import write_results
    from spatial_backbone.evaluation.evaluate import evaluate_backbone
    from spatial_backbone.factory import build_backbone

    model = processor = None
    result, outputs = {}, []
    for cfg in cfgs:
        out = Path(cfg.out_dir)
        if not (ctx.resume and (out / "results.json").is_file()):
            if model is None:
                model, processor = build_backbone(cfg.backbone)
            res = evaluate_backbone(model, processor, cfg.data_dir, cfg.split, cfg.eval, progress=True)
            write_results(res, out, {"backbone": cfg.backbone.name_or_path, "config": to_yaml(cfg)})
        summary = json.loads((out / "results.json").read_text())
        result[cfg.split] = {k: summary[k] for k in ("n_items", "overall", "families", "skills")}
        outputs.append(out / "results.json")
    return result, outputs


STAGES = [
    Stage("spatial_data", configure_data, run_data),
    Stage("sft", configure_sft, run_sft, resumable=True),
    Stage("rl", configure_rl, run_rl, resumable=True),
    *(Stage(name, configure_eval(name), run_eval, resumable=True) for name in BACKBONES),
]
