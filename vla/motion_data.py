"""Image-free training frames for the motion decoder (`head.kwargs.motion=true`, `motion_batch=N`).

The motion decoder (`vla.heads.motion`) maps the proprio state, the target's and goal's 3D positions and the
instruction to an action chunk. In training it reads the TRUE positions (the dataset's privileged state), so
its frames need no image and no backbone pass: `MotionFrames` holds every frame's state, privileged state,
action chunk and instruction as tensors (read once from the LeRobot dataset's parquet columns, no video
decoding), and `with_motion` attaches `batch["motion"]`, a batch of N such frames, to every training batch.
A step then trains the decoder on N + B frames for little more than the cost of B.

Why (session 16, `benchmarks/motion_probe.py`): an MLP on exactly these inputs imitates the PickPlace expert
at 0% after 16k training samples, 63% after 64k and 97% after 256k; the suite VLA's decoder saw ~13k per task
in a 4000-step schedule at batch 16, and under oracle grounding placed the ball in 0-25% of episodes. The
motion needs samples, not images.

Sampling is a pure function of (seed, process, step), so a resumed run draws the same frames.
"""

from __future__ import annotations

import numpy as np
import torch

from vla.processor import ACTION_KEY, PRIVILEGED_KEY, STATE_KEY

MOTION_KEY = "motion"


class MotionFrames:
    """Every frame of a LeRobot dataset as (state [S], privileged [P], action chunk [H, A] + padding mask,
    instruction). Chunks stop at episode ends (`action_is_pad`), as lerobot's `delta_timestamps` do."""

    def __init__(self, dataset, chunk: int):
        if PRIVILEGED_KEY not in dataset.meta.features:
            raise ValueError(
                f"motion_batch > 0 needs {PRIVILEGED_KEY!r} in the dataset (the true target/goal positions "
                f"the motion decoder trains on); dataset {dataset.repo_id} has "
                f"{sorted(k for k in dataset.meta.features if '.' in k)}. Record it with svla-record, or set "
                "motion_batch=0"
            )
        cols = [STATE_KEY, PRIVILEGED_KEY, ACTION_KEY, "episode_index", "task_index"]
        table = dataset.hf_dataset.select_columns(cols).with_format("numpy")[:]
        self.state = torch.as_tensor(np.asarray(table[STATE_KEY], dtype=np.float32))  # [N, S]
        self.privileged = torch.as_tensor(np.asarray(table[PRIVILEGED_KEY], dtype=np.float32))  # [N, P]
        actions = torch.as_tensor(np.asarray(table[ACTION_KEY], dtype=np.float32))  # [N, A]
        episode = torch.as_tensor(np.asarray(table["episode_index"]))  # [N]
        n = len(episode)
        # step k of frame i's chunk is frame i + k if in the same episode, else padding (last frame repeated)
        idx = torch.arange(n)[:, None] + torch.arange(chunk)[None]  # [N, H]
        idx_c = idx.clamp_max(n - 1)
        self.is_pad = (idx >= n) | (episode[idx_c] != episode[:, None])  # [N, H]
        last = torch.where(self.is_pad, torch.arange(n)[:, None], idx_c)  # [N, H]
        for k in range(1, chunk):  # padded steps repeat the episode's last frame
            last[:, k] = torch.where(self.is_pad[:, k], last[:, k - 1], last[:, k])
        self.actions = actions[last]  # [N, H, A]
        names = {int(row.task_index): str(task) for task, row in dataset.meta.tasks.iterrows()}
        self.task = torch.as_tensor(np.asarray(table["task_index"]))  # [N]
        self.task_names = names

    def __len__(self) -> int:
        return len(self.task)

    def sample(self, n: int, generator: torch.Generator) -> dict:
        """A LeRobot-style batch of n frames without images: state, privileged state, action chunk, task."""
        i = torch.randint(0, len(self), (n,), generator=generator)
        return {
            STATE_KEY: self.state[i],
            PRIVILEGED_KEY: self.privileged[i],
            ACTION_KEY: self.actions[i],
            "action_is_pad": self.is_pad[i],
            "task": [self.task_names[int(t)] for t in self.task[i]],
        }


def with_motion(loader, frames: MotionFrames, n: int, seed: int, start: int, rank: int = 0):
    """Iterate `loader`, adding `batch["motion"]` (n frames drawn for global step start, start + 1, ...)."""
    step = start
    for batch in loader:
        g = torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + step) % 2**63)
        yield {**batch, MOTION_KEY: frames.sample(n, g)}
        step += 1
