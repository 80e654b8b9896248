"""LeRobot dataset loading for training: action chunks through `delta_timestamps`, a resumable batch order.

The batch order is a pure function of (seed, epoch): epoch e shuffles with `seed + e`. A run resumed at step s
therefore sees exactly the batches an uninterrupted run would, and process r of W takes every W-th batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from envs.record import camera_of_key
from vla.train_config import DatasetConfig


class DatasetError(ValueError):
    pass


def open_dataset(cfg: DatasetConfig, chunk: int):
    """`LeRobotDataset` with action chunks of `chunk` steps (`action_is_pad` marks steps past the end)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    if cfg.root is not None:
        root = Path(cfg.root)
        if not (root / "meta" / "info.json").is_file():
            raise DatasetError(
                f"dataset.root={cfg.root!r} is not a LeRobot dataset (no meta/info.json); record one with "
                f"`svla-record env=<task> root={cfg.root}` or point dataset.root at an existing dataset"
            )
    try:
        meta = LeRobotDatasetMetadata(cfg.repo_id, root=cfg.root)
    except Exception as err:  # noqa: BLE001 - hub / filesystem errors vary; the message says what to do
        raise DatasetError(
            f"could not open dataset repo_id={cfg.repo_id!r} root={cfg.root!r}: {err}. A hub id needs "
            "network "
            "access (HF_HUB_OFFLINE=0); a local dataset needs dataset.root"
        ) from err
    fps = meta.fps
    delta = {"action": [k / fps for k in range(chunk)]}
    return LeRobotDataset(cfg.repo_id, root=cfg.root, episodes=cfg.episodes, delta_timestamps=delta)


def batch_indices(
    n: int, batch_size: int, seed: int, start_step: int, rank: int = 0, world: int = 1
) -> Iterator[list[int]]:
    """Index batches from global step `start_step` on; each epoch drops the last incomplete batch."""
    per_epoch = n // (batch_size * world)
    if per_epoch == 0:
        raise DatasetError(
            f"dataset has {n} frames, fewer than one batch of {batch_size} x {world} processes"
        )
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for k in range(offset, per_epoch):
            first = (k * world + rank) * batch_size
            yield perm[first : first + batch_size]
            step += 1
        step = (epoch + 1) * per_epoch


def dataset_features(dataset, cameras: list[str]) -> dict:
    """Camera names, state and action dims of a LeRobot dataset (the form `check_features` takes)."""
    feats = dataset.meta.features
    return {
        "cameras": [cam for cam in map(camera_of_key, feats) if cam is not None],
        "state_dim": int(feats["observation.state"]["shape"][0]),
        "action_dim": int(feats["action"]["shape"][0]),
    }
