"""`action_tokens`: VST / OpenVLA-style discrete actions, decoded autoregressively by the backbone LM head.

- 256 bins per dimension, added to the vocabulary as new tokens `<|act_0|>`..`<|act_255|>` (the policy resizes
  the embeddings). Values are scaled per dimension from the 1st/99th percentile to [-1, 1] and clipped
  (`quantile` normalization), then binned uniformly; a bin decodes to its centre.
- The proprio state is given to the LM the same way: one bin token per state dimension after the prompt.
- Training: teacher forcing on the H x A action tokens; cross-entropy over the 256 action tokens only.
- Decoding: greedy, H x A tokens one by one with the KV cache (`generate`), logits restricted to action
  tokens. This is the slow baseline the parallel heads are measured against (benchmarks/heads.py).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from vla.heads.base import ActionHead, HeadDims, register_head

N_BINS = 256
ACTION_TOKENS = [f"<|act_{i}|>" for i in range(N_BINS)]


def to_bins(x: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] -> bin indices in [0, 255]."""
    return ((x.clamp(-1, 1) + 1) / 2 * N_BINS).long().clamp(0, N_BINS - 1)


def from_bins(b: torch.Tensor) -> torch.Tensor:
    """Bin indices -> bin centres in [-1, 1]."""
    return (b.float() + 0.5) / N_BINS * 2 - 1


class _OnlyActionTokens(LogitsProcessor):
    def __init__(self, first_id: int):
        self.first_id = first_id

    def __call__(self, input_ids, scores):  # scores [B, V]
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.first_id : self.first_id + N_BINS] = scores[:, self.first_id : self.first_id + N_BINS]
        return masked


@register_head("action_tokens")
class ActionTokensHead(ActionHead):
    uses_lm = True
    action_norm_mode = "quantile"
    state_norm_mode = "quantile"

    def __init__(self, dims: HeadDims):
        super().__init__()
        self.dims = dims
        self.first_id = -1  # set by the policy once the tokens are in the vocabulary

    def suffix_ids(self, state: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """State bins (and, for training, action bins) as token ids: [B, S (+ H * A)]."""
        ids = [to_bins(state) + self.first_id]  # [B, S]
        if actions is not None:
            ids.append(to_bins(actions).flatten(1) + self.first_id)  # [B, H * A]
        return torch.cat(ids, dim=1)

    def lm_loss(self, logits: torch.Tensor, input_ids: torch.Tensor, is_pad: torch.Tensor):
        """logits [B, S, V] of a teacher-forced sequence ending with the H x A action tokens."""
        n = self.dims.chunk * self.dims.action_dim
        pred = logits[:, -n - 1 : -1, self.first_id : self.first_id + N_BINS]  # [B, n, 256]
        target = input_ids[:, -n:] - self.first_id  # [B, n]
        ce = torch.nn.functional.cross_entropy(pred.reshape(-1, N_BINS), target.reshape(-1), reduction="none")
        keep = (~is_pad).repeat_interleave(self.dims.action_dim, dim=1).reshape(-1).float()
        loss = (ce * keep).sum() / keep.sum().clamp_min(1.0)
        acc = ((pred.argmax(-1) == target).float().reshape(-1) * keep).sum() / keep.sum().clamp_min(1.0)
        return loss, {"token_ce": float(loss.detach()), "token_acc": float(acc)}

    @torch.no_grad()
    def generate(self, model, inputs: dict) -> torch.Tensor:
        """Greedy decoding of H x A action tokens -> normalized chunk [B, H, A]."""
        n = self.dims.chunk * self.dims.action_dim
        out = model.generate(
            **inputs,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            logits_processor=LogitsProcessorList([_OnlyActionTokens(self.first_id)]),
        )
        bins = out[:, -n:] - self.first_id  # [B, n]
        return from_bins(bins).view(-1, self.dims.chunk, self.dims.action_dim)
