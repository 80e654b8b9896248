"""Motion decoder: the action chunk from the proprio state, WHERE the target and goal are and the words.

Design (learning by cheating, Chen et al. 2019: a privileged policy learns the motion from the simulator's
true state; the sensorimotor policy supplies that state from its sensors). The VLA is split at an explicit
intermediate representation, the target's and goal's 3D positions:
- perception: the backbone and the grounding head (`vla.heads.grounding`) find the objects the words name and
  predict their positions from the images (supervised by the privileged positions);
- motion (this module): an MLP maps (state, positions, positions minus end effector, instruction code) to the
  chunk. It trains on the TRUE positions, on every frame of the dataset at once through cheap image-free
  batches (`vla.motion_data`), and at rollout reads the perception's predictions (or the true positions
  under `svla-eval oracle_grounding=true`).

Why (session 16, `benchmarks/motion_probe.py`): under oracle grounding the suite VLA's per-query action MLP
placed the ball in 0-25% of PickPlace episodes and never stacked, while an MLP on the true positions imitated
the expert at 97-100% (PickPlace, Stack; Lift 100%, Push 93%), once it had seen ~256k frames: the motion was
sample-starved behind the backbone's cost per frame, not missing information. And it needs width (session 17):
a 256-wide MLP learns two or three tasks but fits an average that places nothing on all five (PickPlace and
Stack 0% under the oracle); 1024 wide (`head.kwargs.motion_hidden`, the default) gets Lift 100%, Reach 100%,
Push 80%, PickPlace 100%, Stack 100% from the same 1M samples.

The instruction code is a masked mean of the backbone's (detached) input embeddings of the instruction words:
the task (lift, touch, push, put on, stack) is in the words, and the code costs no backbone pass.
state [B, S], xyz [B, P * 3], rel [B, P * 3], words [B, L, D], words_mask [B, L] -> chunk [B, H, A].
"""

from __future__ import annotations

import torch
from torch import nn

from vla.heads.base import HeadDims


class MotionDecoder(nn.Module):
    def __init__(self, dims: HeadDims, hidden: int = 1024, task_dim: int = 32):
        super().__init__()
        if not dims.aux_dim:
            raise ValueError(
                "head.kwargs.motion=true needs the privileged target/goal positions in the dataset "
                "(privileged.target_goal, recorded by svla-record for our suite): the motion decoder reads "
                "positions"
            )
        self.chunk, self.action_dim = dims.chunk, dims.action_dim
        self.task = nn.Sequential(nn.LayerNorm(dims.hidden), nn.Linear(dims.hidden, task_dim), nn.GELU())
        self.net = nn.Sequential(
            nn.Linear(dims.state_dim + 2 * dims.aux_dim + task_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, dims.chunk * dims.action_dim),
        )

    def forward(
        self,
        state: torch.Tensor,
        xyz: torch.Tensor,
        rel: torch.Tensor,
        words: torch.Tensor,
        words_mask: torch.Tensor,
    ) -> torch.Tensor:
        m = words_mask.unsqueeze(-1).to(words.dtype)  # [B, L, 1]
        pooled = (words.detach() * m).sum(1) / m.sum(1).clamp_min(1.0)  # [B, D]
        x = torch.cat([state, xyz, rel, self.task(pooled)], dim=-1)  # [B, S + 2 P*3 + T]
        return self.net(x).view(-1, self.chunk, self.action_dim)  # [B, H, A]
