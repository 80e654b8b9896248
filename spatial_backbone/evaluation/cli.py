"""`svla-spatial-eval`: per-skill spatial scores of a backbone on a held-out split, beside chance.

    svla-spatial-eval                                             # tiny_1m on outputs/spatial_data, split
    test
    svla-spatial-eval backbone=tiny_5m split=shifted
    svla-spatial-eval backbone=pretrained backbone.name_or_path=outputs/sft/backbone data_dir=/data/spatial

Writes `<out_dir>/results.json` (summary), `predictions.jsonl` (one row per item) and `scores.png` (bar
chart), and prints the table. The schema is `SpatialEvalConfig`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from envs.hydra_utils import hydra_app, to_yaml
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.config import SPLITS
from spatial_backbone.evaluation.evaluate import EvalOptions, evaluate_backbone

log = logging.getLogger(__name__)


@dataclass
class SpatialEvalConfig:
    """backbone: which backbone to evaluate (preset or checkpoint directory).
    data_dir: a dataset written by svla-spatial-data. split: test, shifted (or val, train).
    eval: item selection, batching, generation length, fallback (see EvalOptions).
    out_dir: where results go (default outputs/spatial_eval/<backbone name>-<split>)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    data_dir: str = "outputs/spatial_data"
    split: str = "test"
    eval: EvalOptions = field(default_factory=lambda: EvalOptions(max_items=560))
    out_dir: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} must be one of {SPLITS}")


def results_table(res: dict[str, Any]) -> Table:
    t = Table(title=f"spatial eval: {res['split']} ({res['n_items']} items)")
    for col in ("skill", "metric", "n", "score", "chance", "strict", "parsed"):
        t.add_column(col, justify="left" if col in ("skill", "metric") else "right")
    for name, s in res["skills"].items():
        t.add_row(
            name,
            s["metric"],
            str(s["n"]),
            f"{s['score']:.3f}",
            f"{s['chance']:.3f}",
            f"{s['strict']:.3f}",
            f"{s['parsed']:.2f}",
        )
    for name, f in list(res["families"].items()) + [("OVERALL", res["overall"])]:
        t.add_row(
            f"[bold]{name}[/]",
            "mean",
            str(f["skills"]),
            f"{f['score']:.3f}",
            f"{f['chance']:.3f}",
            f"{f['strict']:.3f}",
            f"{f['parsed']:.2f}",
        )
    return t


def plot_scores(res: dict[str, Any], path: Path) -> None:
    """Horizontal bars of per-skill scores with chance levels as black ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["skills"])
    scores = [res["skills"][n]["score"] for n in names]
    chance = [res["skills"][n]["chance"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    y = range(len(names))
    ax.barh(y, scores, color="tab:blue", label="score")
    ax.scatter(chance, y, marker="|", s=200, color="black", label="chance", zorder=3)
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (accuracy / MRA / IoU)")
    ax.set_title(
        f"{res['split']}: overall {res['overall']['score']:.3f} (chance {res['overall']['chance']:.3f})"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(res: dict[str, Any], out: Path, extra: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in res.items() if k != "rows"} | extra
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    with open(out / "predictions.jsonl", "w") as f:
        for r in res["rows"]:
            f.write(json.dumps(r, default=str) + "\n")
    plot_scores(res, out / "scores.png")


def run(cfg: SpatialEvalConfig) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from spatial_backbone.factory import build_backbone

    model, processor = build_backbone(cfg.backbone)
    res = evaluate_backbone(model, processor, cfg.data_dir, cfg.split, cfg.eval, progress=True)
    name = Path(cfg.backbone.name_or_path).name or "backbone"
    out = Path(cfg.out_dir or f"outputs/spatial_eval/{name}-{cfg.split}")
    write_results(res, out, {"backbone": cfg.backbone.name_or_path, "config": to_yaml(cfg)})
    Console().print(results_table(res))
    Console().print(f"wrote {out / 'results.json'}, {out / 'predictions.jsonl'}, {out / 'scores.png'}")
    return {k: v for k, v in res.items() if k != "rows"} | {"out_dir": str(out)}


main = hydra_app("spatial_eval", SpatialEvalConfig)(run)

if __name__ == "__main__":
    main()
