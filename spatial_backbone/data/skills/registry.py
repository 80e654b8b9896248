"""The skill registry: name -> `SkillDef`. Skills register themselves with `@register_skill(name, family)`.

A skill is `fn(ctx: SceneContext, rng: np.random.Generator) -> list[Sample]`; it returns [] when the scene
does not fit the question (too few visible objects, ambiguous margins), and the generator then draws another
skill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spatial_backbone.data.sample import ANSWER_TYPES, SKILL_FAMILIES


@dataclass(frozen=True)
class SkillDef:
    """A registered skill: its family (single_view, multi_view, video, ssrl, grounding), the answer type it
    produces, and the generator function."""

    name: str
    family: str
    answer_type: str
    fn: Callable


SKILLS: dict[str, SkillDef] = {}


class UnknownSkillError(KeyError):
    """A skill name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def register_skill(name: str, family: str, answer_type: str) -> Callable[[Callable], Callable]:
    if family not in SKILL_FAMILIES:
        raise ValueError(f"skill {name!r}: unknown family {family!r}; valid: {SKILL_FAMILIES}")
    if answer_type not in ANSWER_TYPES:
        raise ValueError(
            f"skill {name!r}: unknown answer type {answer_type!r}; valid: {sorted(ANSWER_TYPES)}"
        )

    def deco(fn: Callable) -> Callable:
        if name in SKILLS:
            raise ValueError(f"skill {name!r} is already registered")
        SKILLS[name] = SkillDef(name, family, answer_type, fn)
        return fn

    return deco


def get_skill(name: str) -> SkillDef:
    if name not in SKILLS:
        raise UnknownSkillError(f"unknown skill {name!r}; valid skills: {', '.join(sorted(SKILLS))}")
    return SKILLS[name]


def resolve_skills(names: list[str] | tuple[str, ...]) -> list[SkillDef]:
    """The SkillDefs of `names` (all registered skills when empty), in registry order for empty input."""
    if not names:
        return list(SKILLS.values())
    bad = [n for n in names if n not in SKILLS]
    if bad:
        raise UnknownSkillError(f"unknown skill(s) {bad!r}; valid skills: {', '.join(sorted(SKILLS))}")
    return [SKILLS[n] for n in names]
