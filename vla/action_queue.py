"""The action queue every policy shares: predict a chunk, execute its first `cfg.n_action_steps`, re-plan.

A policy class mixes in `ActionQueue` and provides `predict_action_chunk(obs) -> [B, H, A]` and `cfg`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


class ActionQueue:
    _queue: deque

    def _init_queue(self) -> None:
        self._queue = deque()

    @torch.no_grad()
    def select_action(self, obs: dict) -> np.ndarray:
        """Next action [B, A]: a chunk is predicted when the queue is empty; its first k steps are used."""
        if not self._queue:
            chunk = self.predict_action_chunk(obs)  # [B, H, A]
            for t in range(self.cfg.n_action_steps):
                self._queue.append(chunk[:, t].cpu().numpy())
        return self._queue.popleft()

    def reset(self) -> None:
        self._queue.clear()
