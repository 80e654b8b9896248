"""State and action normalization with statistics taken from the training dataset and saved in the checkpoint.

Two modes: `mean_std` ((x - mean) / std, for the continuous heads) and `quantile` (1st/99th percentile mapped
to [-1, 1] and clipped, OpenVLA/VST-style, for discrete action tokens). A missing statistics key is an error,
never a silent pass-through: a checkpoint without the statistics of a feature cannot act on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

MODES = ("mean_std", "quantile")
_REQUIRED = {"mean_std": ("mean", "std"), "quantile": ("q01", "q99")}


class StatsError(KeyError):
    """Statistics for a feature are missing or malformed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def select_stats(all_stats: Mapping, keys: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    """Keep the statistics the policy needs (mean, std, min, max, q01, q99) of `keys`, as JSON-able lists."""
    out = {}
    for key in keys:
        if key not in all_stats:
            raise StatsError(f"dataset statistics have no entry for {key!r} (have: {sorted(all_stats)})")
        st = all_stats[key]
        out[key] = {
            k: np.asarray(st[k], dtype=np.float64).reshape(-1).tolist()
            for k in ("mean", "std", "min", "max", "q01", "q99")
            if k in st
        }
    return out


def feature_dim(stats: Mapping, key: str) -> int:
    """Dimension of a feature from its statistics; a missing feature is a `StatsError` naming what exists."""
    if key not in stats or not stats[key]:
        raise StatsError(
            f"no statistics for {key!r} (have: {sorted(stats)}); recompute the dataset statistics"
        )
    return len(next(iter(stats[key].values())))


class Normalizer(torch.nn.Module):
    """Normalize / unnormalize one feature. Buffers hold the statistics, so they move with the module."""

    def __init__(self, key: str, stats: Mapping, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"normalization mode {mode!r} is not one of {MODES}")
        if key not in stats:
            raise StatsError(f"no statistics for {key!r} in the checkpoint/dataset (have: {sorted(stats)})")
        missing = [k for k in _REQUIRED[mode] if k not in stats[key]]
        if missing:
            raise StatsError(f"statistics of {key!r} lack {missing} needed by mode {mode!r}")
        self.key, self.mode = key, mode
        if mode == "mean_std":
            lo = torch.tensor(stats[key]["mean"], dtype=torch.float32)
            scale = torch.tensor(stats[key]["std"], dtype=torch.float32).clamp_min(1e-4)
        else:
            q01 = torch.tensor(stats[key]["q01"], dtype=torch.float32)
            q99 = torch.tensor(stats[key]["q99"], dtype=torch.float32)
            lo, scale = (q01 + q99) / 2, ((q99 - q01) / 2).clamp_min(1e-4)
        self.register_buffer("center", lo)
        self.register_buffer("scale", scale)

    @property
    def dim(self) -> int:
        return int(self.center.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D]
        if x.shape[-1] != self.dim:
            raise ValueError(f"{self.key}: got last dimension {x.shape[-1]}, statistics have {self.dim}")
        x = x.to(self.center.device)  # env observations come on the CPU; statistics live with the policy
        y = (x - self.center) / self.scale
        return y.clamp(-1, 1) if self.mode == "quantile" else y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:  # [..., D]
        return y.to(self.center.device) * self.scale + self.center
