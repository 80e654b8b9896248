"""Action heads (registry): `flow_matching`, `l1_chunk`, `action_tokens`; importing this registers them."""

from vla.heads import action_tokens, flow_matching, l1_chunk  # noqa: F401
from vla.heads.base import HEADS, ActionHead, HeadDims, build_head, register_head

__all__ = ["HEADS", "ActionHead", "HeadDims", "build_head", "register_head"]
