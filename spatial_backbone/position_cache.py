"""Memoize the position tables Qwen2.5-VL rebuilds on every forward.

Design: `transformers`' Qwen2.5-VL recomputes, in Python loops, three integer/position tables that depend
only on the *shapes* of the input, never on weights or pixel values:
- the vision tower's 2D rotary table (`rot_pos_emb(grid_thw)`) and window permutation
  (`get_window_index(grid_thw)`): functions of the image grids alone;
- the language model's M-RoPE positions (`get_rope_index(input_ids, mm_token_type_ids, grids, mask)`):
  functions of the token ids, the image grids and the padding mask.
A policy at rollout sends the same grids (and, within an episode, the same prompt) every step, so these are
~1 ms of pure overhead per action chunk on the tiny backbone, i.e. ~10% of `l1_chunk`'s time
(`benchmarks/heads.py`). `cache_positions(model)` wraps the three methods of one model instance with small
LRU tables keyed by the exact inputs (content, not identity), so a hit returns exactly what a miss computes.

Rules that keep it safe:
- keys include the devices and whether inference mode is on: a tensor made under `torch.inference_mode`
  cannot be saved for backward, so it is never served to a training forward;
- the text positions are memoized only without autograd (rollouts, generation, evaluation); training batches
  differ at every step, so a table there would only cost the key;
- each table holds at most `MAX_ENTRIES` keys (least recently used dropped first);
- served tensors are clones for the text positions (the model stores `rope_deltas` on itself).
The wrapped methods are instance attributes: the state dict, `save_pretrained` and PEFT are unaffected.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

MAX_ENTRIES = 64


class _Table:
    """A bounded least-recently-used table; `hits` and `misses` count lookups (tests, benchmarks)."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key, compute: Callable[[], Any]):
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        self.misses += 1
        value = compute()
        self.data[key] = value
        if len(self.data) > self.max_entries:
            self.data.popitem(last=False)
        return value


def _content(t: torch.Tensor | None):
    """A hashable key for a small integer tensor's exact content (None stays None)."""
    if t is None:
        return None
    return (tuple(t.shape), str(t.dtype), str(t.device), t.detach().cpu().numpy().tobytes())


def _vision_method(name: str):
    """`name` of the vision tower (`rot_pos_emb` or `get_window_index`), memoized by the grids, the tower's
    device (its tables are made there, whatever device the grids are on) and inference mode."""

    def method(self, grid_thw: torch.Tensor):
        key = (
            _content(grid_thw),
            str(self.patch_embed.proj.weight.device),
            torch.is_inference_mode_enabled(),
        )
        return self.svla_position_tables[name].get(key, lambda: getattr(type(self), name)(self, grid_thw))

    return method


def _get_rope_index(
    self,
    input_ids,
    mm_token_type_ids,
    image_grid_thw=None,
    video_grid_thw=None,
    second_per_grid_ts=None,
    attention_mask=None,
    **kwargs,
):
    args = dict(
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        second_per_grid_ts=second_per_grid_ts,
        attention_mask=attention_mask,
    )

    def compute():
        return type(self).get_rope_index(self, input_ids, **args, **kwargs)

    if torch.is_grad_enabled() or kwargs:
        return compute()
    key = (*(_content(t) for t in (input_ids, *args.values())), torch.is_inference_mode_enabled())
    positions, deltas = self.svla_position_tables["get_rope_index"].get(key, compute)
    return positions.clone(), deltas.clone()


def cache_positions(model: nn.Module) -> dict[str, _Table]:
    """Memoize the vision rotary table, window index and M-RoPE positions of `model` (a Qwen2.5-VL
    `...ForConditionalGeneration` or its `.model`); returns the tables by method name. Idempotent. The
    wrappers call the class's own methods and find their tables on the instance, so `copy.deepcopy` (TRL's
    reference model) gives a copy with its own tables."""
    inner = getattr(model, "model", model)
    vis = inner.visual
    if getattr(inner, "svla_position_tables", None) is None:
        vis.svla_position_tables = {"rot_pos_emb": _Table(), "get_window_index": _Table()}
        inner.svla_position_tables = {"get_rope_index": _Table()}
        for name in vis.svla_position_tables:
            setattr(vis, name, types.MethodType(_vision_method(name), vis))
        inner.get_rope_index = types.MethodType(_get_rope_index, inner)
    return vis.svla_position_tables | inner.svla_position_tables
