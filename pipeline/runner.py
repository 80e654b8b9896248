"""Run the stages in order with caching, resume and visible progress.

For each stage of `pipeline.graph.GRAPH`: build its typed config, hash it with its inputs' output hashes
(`pipeline.cache`), then
- skip it when a finished record with that key exists and its outputs are present (`cached`);
- continue it when a `running` record with that key exists and the stage is resumable (`resumed`: training
  resumes from its last checkpoint, per-task / per-split stages keep what they finished);
- else clear its directory and run it (`ran`). `force=` names stages that run even when cached.
A rich rule names the current stage, each stage shows its own progress bars, and a table of the time per stage
ends the run (the report has the same table). A failing stage leaves its `running` record, so the next
invocation resumes it.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.cache import StageRun, config_text, is_complete, is_interrupted, read_record, stage_key
from pipeline.config import PipelineConfig
from pipeline.graph import GRAPH, STAGES, skipped
from pipeline.stage import Context, Stage

log = logging.getLogger(__name__)


def registry() -> dict[str, Stage]:
    from pipeline import report, robot, spatial

    stages = {s.name: s for s in [*spatial.STAGES, *robot.STAGES, *report.STAGES]}
    if set(stages) != set(STAGES):
        raise RuntimeError(f"stage registry {sorted(stages)} != pipeline.graph stages {sorted(STAGES)}")
    return stages


@dataclass
class Outcome:
    """What happened to a stage in this invocation. status: ran | resumed | cached | skipped."""

    name: str
    status: str
    seconds: float = 0.0  # wall time spent in this invocation
    recorded: float | None = None  # wall time of the run that produced the cached output


def run_pipeline(
    cfg: PipelineConfig, console: Console | None = None
) -> tuple[dict[str, dict], list[Outcome]]:
    """Run (or resume, or skip) every stage; returns the stage records by name and this invocation's
    outcomes."""
    console = console or Console()
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stages, skip, force = registry(), skipped(cfg.skip), set(cfg.force)
    records: dict[str, dict[str, Any]] = {}
    outcomes: list[Outcome] = []
    t_run = time.perf_counter()
    for i, name in enumerate(STAGES, 1):
        head = f"[bold cyan]stage {i}/{len(STAGES)}: {name}[/]"
        if name in skip:
            console.rule(f"{head} [dim](skipped: skip={cfg.skip})[/]")
            outcomes.append(Outcome(name, "skipped"))
            continue
        ctx = Context(cfg, run_dir, records)
        stage_cfg = stages[name].configure(ctx)
        text = config_text(stage_cfg, run_dir)
        inputs = {k: records[k]["output_hash"] for k in GRAPH[name] if k in records}
        key = stage_key(name, text, inputs)
        stage_dir = ctx.dir(name)
        prev = read_record(stage_dir)
        if name not in force and is_complete(prev, key, run_dir):
            console.rule(f"{head} [green](cached, key {key[:10]}, {prev['seconds']:.0f} s when run)[/]")
            records[name] = prev
            outcomes.append(Outcome(name, "cached", 0.0, prev["seconds"]))
            continue
        resume = stages[name].resumable and name not in force and is_interrupted(prev, key)
        console.rule(f"{head} [yellow]({'resuming' if resume else 'running'}, key {key[:10]})[/]")
        if not resume:
            shutil.rmtree(stage_dir, ignore_errors=True)
        stage_dir.mkdir(parents=True, exist_ok=True)
        run = StageRun(name, stage_dir, key, text, inputs, cfg.seed, resumed=resume)
        run.start()
        t0 = time.perf_counter()
        result, outputs = stages[name].run(stage_cfg, Context(cfg, run_dir, records, resume))
        seconds = time.perf_counter() - t0
        rel = [str(Path(p).resolve().relative_to(run_dir.resolve())) for p in outputs]
        records[name] = run.finish(result, rel, seconds)
        outcomes.append(Outcome(name, "resumed" if resume else "ran", seconds, seconds))
        console.print(f"[bold]{name}[/] done in {seconds:.1f} s")
    console.print(timing_table(outcomes, time.perf_counter() - t_run))
    console.print(f"report: {run_dir / 'report.md'}")
    return records, outcomes


def timing_table(outcomes: list[Outcome], total: float) -> Table:
    table = Table(title=f"svla-pipeline: time per stage ({total:.0f} s in this invocation)")
    for col in ("stage", "status", "this run (s)", "when produced (s)"):
        table.add_column(col, justify="left" if col in ("stage", "status") else "right")
    for o in outcomes:
        produced = "" if o.recorded is None else f"{o.recorded:.1f}"
        table.add_row(o.name, o.status, f"{o.seconds:.1f}", produced)
    return table
