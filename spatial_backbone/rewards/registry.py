"""Registry of reward families (`vst`, `spatialthinker`, `ssrl`), and scoring a mixed batch by each item's
family.

Every dataset item names the family that can check it (`item["reward"]`, see docs/spatial_data.md); `score`
groups a batch by that key, runs each family's pure `score(items) -> list[dict]` and returns the results in
input order. Families register themselves by module; an unknown family name is an error listing the valid
ones (a dataset that asks for a reward nobody implements must fail loudly, not score 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spatial_backbone.rewards import spatialthinker, ssrl, vst


@dataclass(frozen=True)
class RewardFamily:
    """A reward family: its name, its pure `score(items) -> list[dict]` and the components it always returns
    (besides `overall`)."""

    name: str
    score: Callable[[list[dict[str, Any]]], list[dict[str, float]]]
    components: tuple[str, ...]


REWARDS: dict[str, RewardFamily] = {}


def register_reward(family: RewardFamily) -> RewardFamily:
    if family.name in REWARDS:
        raise ValueError(f"reward family {family.name!r} is already registered")
    REWARDS[family.name] = family
    return family


for _module in (vst, spatialthinker, ssrl):
    register_reward(RewardFamily(_module.NAME, _module.score, _module.COMPONENTS))


def get_reward(name: str) -> RewardFamily:
    if name not in REWARDS:
        raise KeyError(f"unknown reward family {name!r}; valid: {sorted(REWARDS)}")
    return REWARDS[name]


def score(items: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Score a batch whose items may belong to different families (each item's `reward` key), in order."""
    out: list[dict[str, float] | None] = [None] * len(items)
    by_family: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_family.setdefault(it["reward"], []).append(i)
    for name, idx in by_family.items():
        for i, res in zip(idx, get_reward(name).score([items[i] for i in idx]), strict=True):
            out[i] = res
    return out  # type: ignore[return-value]
