"""Skill registry; importing this package registers every skill family (one module per family)."""

from spatial_backbone.data.skills import grounding, multi_view, single_view, ssrl, video  # noqa: F401
from spatial_backbone.data.skills.registry import (
    SKILLS,
    SkillDef,
    UnknownSkillError,
    get_skill,
    register_skill,
    resolve_skills,
)

__all__ = ["SKILLS", "SkillDef", "UnknownSkillError", "get_skill", "register_skill", "resolve_skills"]
