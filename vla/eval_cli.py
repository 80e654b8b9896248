"""`svla-eval checkpoint=... env=... episodes=50`: hydra entry point over `conf/eval.yaml`."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.table import Table

from envs.hydra_utils import hydra_app
from vla.evaluate import EvalConfig, evaluate


def run(cfg: EvalConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    r = evaluate(cfg)
    table = Table(title=f"svla-eval {cfg.checkpoint}")
    for col in ("task", "episodes", "success", "Wilson 95%", "mean length"):
        table.add_column(col)
    lo, hi = r["wilson95"]
    table.add_row(
        r["task"],
        str(r["episodes"]),
        f"{r['success_rate']:.1%}",
        f"[{lo:.1%}, {hi:.1%}]",
        f"{r['mean_length']:.1f}",
    )
    Console().print(table)
    print(f"results: {cfg.output_dir}/results.json")
    return r


main = hydra_app("eval", EvalConfig)(run)

if __name__ == "__main__":
    main()
