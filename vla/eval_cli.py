"""`svla-eval checkpoint=... env=... episodes=50`: hydra entry point over `conf/eval.yaml`.

One task prints one row; a suite (`env=metaworld_mt10 episodes=10`) prints a row per task, a row per
difficulty bucket (success pooled over its tasks, Wilson 95%), and the average of the buckets.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.table import Table

from envs.hydra_utils import hydra_app
from vla.evaluate import EvalConfig, evaluate


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def results_table(r: dict, title: str) -> Table:
    """The printed summary of a `results.json` dict (one task or a suite)."""
    table = Table(title=title)
    rows = list(r["tasks"].values()) if "suite" in r else [r]
    diag = any("diagnostics" in t for t in rows)
    for col in ("task", "episodes", "success", "Wilson 95%", "mean length"):
        table.add_column(col)
    if diag:
        table.add_column("failed: touched first\ntarget/ref/other/none")
    grounding = any("grounding_cm" in t.get("diagnostics", {}) for t in rows)
    if grounding:
        table.add_column("grounding error, cm\ntarget/goal, first chunk")
    for t in rows:
        lo, hi = t["wilson95"]
        cells = [
            t["task"],
            str(t["episodes"]),
            _pct(t["success_rate"]),
            f"[{lo:.1%}, {hi:.1%}]",
            f"{t['mean_length']:.1f}",
        ]
        if diag:
            d = t.get("diagnostics", {}).get("first_touch_failed")
            cells.append(
                "/".join(f"{v:.0%}" for v in d.values()) if d and t["diagnostics"]["failures"] else ""
            )
        if grounding:
            g = t.get("diagnostics", {}).get("grounding_cm", {})
            cells.append("/".join(f"{v['first_all']:.1f}" for v in g.values()))
        table.add_row(*cells)
    if "suite" in r:
        table.add_section()
        for name, b in r["buckets"].items():
            lo, hi = b["wilson95"]
            label = f"bucket {name} ({len(b['tasks'])} tasks)"
            table.add_row(label, str(b["episodes"]), _pct(b["success_rate"]), f"[{lo:.1%}, {hi:.1%}]")
        table.add_section()
        n_buckets = len(r["buckets"])
        table.add_row(f"average of {n_buckets} buckets", str(r["episodes"]), _pct(r["average"]))
        lo, hi = r["wilson95"]
        table.add_row(
            "all episodes (pooled)", str(r["episodes"]), _pct(r["success_rate"]), f"[{lo:.1%}, {hi:.1%}]"
        )
    return table


def run(cfg: EvalConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    r = evaluate(cfg)
    Console().print(results_table(r, f"svla-eval {cfg.checkpoint}"))
    print(f"results: {cfg.output_dir}/results.json")
    return r


main = hydra_app("eval", EvalConfig)(run)

if __name__ == "__main__":
    main()
