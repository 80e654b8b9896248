"""Referring expressions by spatial relation, and instruction templates.

Design decisions:
- A relation is a function `(pool, spec, rng) -> Referent | None`: it picks ONE object of `pool` (objects of
  one shape) that the relation singles out by a clear margin, and a noun phrase for it ("the leftmost cube",
  "the ball closest to the blue cylinder"). It returns None when the relation does not apply or would be
  ambiguous (margin below `MARGIN`), and the task resamples the scene. So every instruction names exactly one
  object by construction.
- Relations live in a registry (`RELATIONS`); each task lists the relations it uses. "Left"/"right" are in the
  front camera's view (world -x / +x); "closest to the camera" uses the distance to the front camera.
- Templates are registries too (`TEMPLATES[task]`), chosen with the env's `np_random`, so wording varies.
- `CHARSET` is every character an instruction may contain (the observation's Text space uses it).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from envs.scene import SHAPES, ObjectSpec, SceneSpec

MARGIN = 0.04  # metres by which the named object must beat the runner-up
SIZE_ORDER = {"small": 0, "medium": 1, "large": 2}
CHARSET = string.ascii_letters + string.digits + " .,'-"
MAX_INSTRUCTION_LENGTH = 256


@dataclass(frozen=True)
class Referent:
    """An object singled out by a relation: its scene name, the phrase naming it, and the relation used."""

    name: str
    phrase: str
    relation: str


Relation = Callable[[Sequence[ObjectSpec], SceneSpec, np.random.Generator], "Referent | None"]


def word(obj: ObjectSpec) -> str:
    return SHAPES[obj.shape].word


def color_phrase(obj: ObjectSpec) -> str:
    """ "the blue ball": unique in a scene because names are color_shape."""
    return f"the {obj.color} {word(obj)}"


def _extreme(
    pool: Sequence[ObjectSpec], key: Callable[[ObjectSpec], float], highest: bool
) -> ObjectSpec | None:
    """The object with the lowest (highest) key if it wins by MARGIN, else None."""
    if len(pool) < 2:
        return None
    ranked = sorted(pool, key=key, reverse=highest)
    if abs(key(ranked[0]) - key(ranked[1])) < MARGIN:
        return None
    return ranked[0]


def _by_axis(axis: int, highest: bool, text: str) -> Relation:
    def rel(pool: Sequence[ObjectSpec], spec: SceneSpec, rng: np.random.Generator) -> Referent | None:
        obj = _extreme(pool, lambda o: o.pos[axis], highest)
        return None if obj is None else Referent(obj.name, text.format(w=word(obj)), "")

    return rel


def _by_camera(farthest: bool, text: str) -> Relation:
    def rel(pool: Sequence[ObjectSpec], spec: SceneSpec, rng: np.random.Generator) -> Referent | None:
        eye = np.asarray(spec.front_eye)
        obj = _extreme(pool, lambda o: float(np.linalg.norm(np.asarray(o.pos) - eye)), farthest)
        return None if obj is None else Referent(obj.name, text.format(w=word(obj)), "")

    return rel


def _by_anchor(farthest: bool, text: str) -> Relation:
    def rel(pool: Sequence[ObjectSpec], spec: SceneSpec, rng: np.random.Generator) -> Referent | None:
        names = {o.name for o in pool}
        anchors = [o for o in spec.objects if o.name not in names and o.shape != pool[0].shape]
        if not anchors:
            return None
        anchor = anchors[int(rng.integers(len(anchors)))]
        a = np.asarray(anchor.pos[:2])
        obj = _extreme(pool, lambda o: float(np.linalg.norm(np.asarray(o.pos[:2]) - a)), farthest)
        if obj is None:
            return None
        return Referent(obj.name, text.format(w=word(obj), anchor=color_phrase(anchor)), "")

    return rel


def _by_size(largest: bool) -> Relation:
    def rel(pool: Sequence[ObjectSpec], spec: SceneSpec, rng: np.random.Generator) -> Referent | None:
        if len(pool) < 2:
            return None
        ranked = sorted(pool, key=lambda o: SIZE_ORDER[o.size_label], reverse=largest)
        if ranked[0].size_label == ranked[1].size_label:
            return None
        two = len(pool) == 2
        adj = ("larger" if two else "largest") if largest else ("smaller" if two else "smallest")
        return Referent(ranked[0].name, f"the {adj} {word(ranked[0])}", "")

    return rel


RELATIONS: dict[str, Relation] = {
    "leftmost": _by_axis(0, False, "the leftmost {w}"),
    "rightmost": _by_axis(0, True, "the rightmost {w}"),
    "closest_to_camera": _by_camera(False, "the {w} closest to the camera"),
    "farthest_from_camera": _by_camera(True, "the {w} farthest from the camera"),
    "closest_to_anchor": _by_anchor(False, "the {w} closest to {anchor}"),
    "farthest_from_anchor": _by_anchor(True, "the {w} farthest from {anchor}"),
    "larger": _by_size(True),
    "smaller": _by_size(False),
}


def refer(
    relation: str, pool: Sequence[ObjectSpec], spec: SceneSpec, rng: np.random.Generator
) -> Referent | None:
    """Apply the registered `relation` to `pool`; None if it does not single out one object."""
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; valid: {sorted(RELATIONS)}")
    ref = RELATIONS[relation](pool, spec, rng)
    return None if ref is None else Referent(ref.name, ref.phrase, relation)


# Instruction templates per task. Fields: {target} (a referent phrase) and task-specific ones.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "lift": (
        "pick up {target}",
        "lift {target}",
        "grasp {target} and lift it up",
        "raise {target} off the table",
    ),
    "reach": (
        "touch {target}",
        "reach for {target}",
        "move the gripper to {target}",
        "put the gripper right above {target}",
    ),
    "push": (
        "push {target} {direction} {anchor}",
        "slide {target} so it is {direction} {anchor}",
        "move {target} {direction} {anchor} by pushing it",
    ),
    "pick_place": (
        "put {target} {prep} {receptacle}",
        "place {target} {prep} {receptacle}",
        "pick up {target} and put it {prep} {receptacle}",
    ),
    "stack": ("stack {target} on {base}", "put {target} on top of {base}", "place {target} onto {base}"),
}


def instruction(task: str, rng: np.random.Generator, **fields: str) -> str:
    """Fill a random template of `task`; the result is checked against `CHARSET` and the length limit."""
    templates = TEMPLATES[task]
    text = templates[int(rng.integers(len(templates)))].format(**fields)
    bad = sorted(set(text) - set(CHARSET))
    if bad or len(text) > MAX_INSTRUCTION_LENGTH:
        raise ValueError(f"instruction {text!r} has characters {bad!r} outside CHARSET or is too long")
    return text
