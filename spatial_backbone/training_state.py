"""Resumable training state shared by `svla-sft` and `svla-train` (vla imports it; it imports neither).

A run's checkpoints live in `<output_dir>/checkpoints/step_<n>/`, each with `training_state.pt` (optimizer,
scheduler, python/numpy/torch RNG states, step); `<output_dir>/checkpoints/last` names the newest complete one
and is replaced atomically, after the checkpoint directory itself is in place.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "training_state.pt"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step and the last good checkpoint."""


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def last_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint named by `<output_dir>/checkpoints/last`, if it is complete."""
    marker = output_dir / "checkpoints" / "last"
    if not marker.is_file():
        return None
    path = output_dir / "checkpoints" / marker.read_text().strip()
    return path if (path / STATE_FILE).is_file() else None


def mark_last(output_dir: Path, name: str) -> None:
    """Point `<output_dir>/checkpoints/last` at `name`, atomically."""
    marker = output_dir / "checkpoints" / "last"
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(name)
    os.replace(tmp, marker)


def restore(ckpt: Path, optimizer, scheduler) -> int:
    """Load optimizer, scheduler and RNG states from a checkpoint; returns the step to continue from."""
    state = torch.load(ckpt / STATE_FILE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
