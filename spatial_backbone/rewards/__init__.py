"""Verifiable spatial rewards (VST, SpatialThinker, Spatial-SSRL) as pure functions; see `registry`."""

from spatial_backbone.rewards.registry import REWARDS, get_reward, score

__all__ = ["REWARDS", "get_reward", "score"]
