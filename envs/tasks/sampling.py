"""Small helpers the tasks share to compose scenes: colors, sizes, distractors, retries.

Design: tasks build their object lists explicitly (who must be there for the instruction to make sense), add
distractors, place everything with `scene.place_objects` (manipulation gap, small yaw so parallel fingers can
grasp cubes), and retry the whole draw when a relation would be ambiguous or a layout infeasible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from envs.scene import COLORS, MOVABLE_SHAPES, SIZES, ObjectSpec, object_spec

MANIPULATION_GAP = 0.045  # free space between footprints, so open fingers fit between objects
MANIPULATION_YAW = 0.35  # radians; cubes stay roughly aligned with the fingers (the gantry has no wrist)


def choose[T](rng: np.random.Generator, items: Sequence[T]) -> T:
    return items[int(rng.integers(len(items)))]


def distinct_colors(rng: np.random.Generator, n: int, exclude: Sequence[str] = ()) -> list[str]:
    pool = [c for c in COLORS if c not in exclude]
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def random_size(rng: np.random.Generator, labels: Sequence[str] = tuple(SIZES)) -> str:
    return choose(rng, list(labels))


def distractors(
    rng: np.random.Generator,
    n: int,
    shapes: Sequence[str],
    taken: Sequence[ObjectSpec],
    sizes: Sequence[str] = tuple(SIZES),
) -> list[ObjectSpec]:
    """`n` objects of `shapes` whose (color, shape) differ from `taken` and from each other."""
    used = {(o.color, o.shape) for o in taken}
    out: list[ObjectSpec] = []
    while len(out) < n:
        shape, color = choose(rng, list(shapes)), choose(rng, list(COLORS))
        if (color, shape) in used:
            continue
        used.add((color, shape))
        out.append(object_spec(shape, color, random_size(rng, sizes)))
    return out


def other_movable(shape: str) -> tuple[str, ...]:
    return tuple(s for s in MOVABLE_SHAPES if s != shape)


def retry[T](draw: Callable[[], T | None], what: str, tries: int = 300) -> T:
    """Call `draw` until it returns something (not None); a RuntimeError after `tries` failures."""
    for _ in range(tries):
        try:
            result = draw()
        except RuntimeError:  # placement failed: too crowded this time
            result = None
        if result is not None:
            return result
    raise RuntimeError(f"could not sample a valid {what} episode in {tries} tries")
