"""Decisions every training process must take alike, shared by `svla-sft` and `svla-train` (vla imports it).

In a multi-process run (accelerate's DDP; two CPU processes per DESIGN.md section 6) each optimizer step ends
in a gradient all-reduce that every process must join. A process that leaves the loop on its own, because
its loss was not finite or its clock ran out one step before the others', leaves the rest waiting in that
all-reduce forever: a hang instead of a clear error or a clean stop. So such a decision is reduced over the
processes first (any process that says stop stops them all, at the same step); with one process it is the
process's own, at no cost.
"""

from __future__ import annotations

import time

import torch
from accelerate import Accelerator


def agree(acc: Accelerator, flag: bool) -> bool:
    """True on every process if `flag` is True on any of them."""
    if acc.num_processes == 1:
        return flag
    return bool(acc.reduce(torch.tensor([float(flag)], device=acc.device), reduction="max").item())


def out_of_time(acc: Accelerator, t_start: float, max_minutes: float) -> bool:
    """Whether `max_minutes` of wall time have passed since `t_start` (0 = no limit), on any process."""
    if max_minutes <= 0:
        return False
    return agree(acc, time.perf_counter() - t_start > max_minutes * 60)


def loss_is_finite(acc: Accelerator, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every process (a NaN on one process stops them all)."""
    return not agree(acc, not bool(torch.isfinite(loss.detach()).all()))
