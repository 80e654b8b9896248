"""The pipeline's stages and what each one consumes, in run order (a topological order).

One place names the stages: `force=`, `skip=`, the stage registry (`pipeline.stages`) and the report all use
these names. A stage's inputs are the upstream stages whose outputs it reads; its cache key hashes their
output hashes (`pipeline.cache`), so rerunning a stage invalidates everything downstream of it.
"""

from __future__ import annotations

GRAPH: dict[str, tuple[str, ...]] = {
    "spatial_data": (),
    "sft": ("spatial_data",),
    "rl": ("spatial_data", "sft"),
    "spatial_eval_untuned": ("spatial_data",),
    "spatial_eval_sft": ("spatial_data", "sft"),
    "spatial_eval_rl": ("spatial_data", "rl"),
    "record": (),
    "merge": ("record",),
    "vla_tuned": ("merge", "rl"),
    "vla_untuned": ("merge",),
    "act": ("merge",),
    "eval_tuned": ("merge", "vla_tuned"),
    "eval_untuned": ("merge", "vla_untuned"),
    "eval_act": ("merge", "act"),
    "report": (
        "spatial_eval_untuned",
        "spatial_eval_sft",
        "spatial_eval_rl",
        "vla_tuned",
        "vla_untuned",
        "act",
        "eval_tuned",
        "eval_untuned",
        "eval_act",
    ),
}
STAGES: tuple[str, ...] = tuple(GRAPH)
FINAL = "report"  # reads whatever ran: `skip=` never removes it


def downstream(names: set[str] | list[str]) -> set[str]:
    """`names` and every stage that consumes one of them, directly or not (the report included)."""
    out = set(names)
    for stage, inputs in GRAPH.items():  # GRAPH is in topological order
        if out & set(inputs):
            out.add(stage)
    return out


def skipped(names: set[str] | list[str]) -> set[str]:
    """Stages not run under `skip=names`: those and their consumers, except the report, which says what is
    missing."""
    return downstream(names) - {FINAL}
