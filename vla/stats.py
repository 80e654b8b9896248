"""Success-rate statistics: the Wilson score interval of one proportion (sound at small n and at p near 0 or
1) and Newcombe's square-and-add intervals for a difference of two proportions built from it.

Which difference interval: Newcombe's hybrid score method (method 10 of Newcombe 1998, Statistics in Medicine
17:873-890) for independent samples, and its paired form (method 10 of Newcombe 1998, Statistics in Medicine
17:2635-2650) when both policies are rolled out on the same episode seeds, as the pipeline does: the Wilson
limits of each rate are combined with the episode-level correlation phi (continuity-corrected as Newcombe
does). Both are closed-form (no resampling, so reports are reproducible to the bit), stay inside [-1, 1] and
behave at 0% and 100% success, where Wald intervals collapse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion; (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def _square_and_add(
    p1: float, w1: tuple[float, float], p2: float, w2: tuple[float, float], phi: float
) -> tuple[float, float]:
    """Newcombe's square-and-add limits of p1 - p2 from the Wilson limits w1, w2 and correlation phi."""
    (l1, u1), (l2, u2) = w1, w2
    d = p1 - p2
    lower = d - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    upper = d + math.sqrt(max(0.0, (u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)))
    return max(-1.0, lower), min(1.0, upper)


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of p1 - p2 for independent samples (k1 of n1 vs k2 of n2): Newcombe's hybrid score
    method."""
    if n1 < 1 or n2 < 1 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k1={k1!r}, n1={n1!r}, k2={k2!r}, n2={n2!r}")
    return _square_and_add(k1 / n1, wilson_interval(k1, n1, z), k2 / n2, wilson_interval(k2, n2, z), 0.0)


def paired_newcombe_interval(
    first: Sequence[bool], second: Sequence[bool], z: float = 1.959964
) -> tuple[float, float]:
    """95% interval of p1 - p2 for paired outcomes (episode i of both policies used the same seed):
    Newcombe's square-and-add method 10 with the continuity-corrected correlation phi."""
    if len(first) != len(second) or not first:
        raise ValueError(f"paired outcomes need equal, non-zero lengths, got {len(first)} and {len(second)}")
    n = len(first)
    both = sum(bool(a) and bool(b) for a, b in zip(first, second, strict=True))
    only1 = sum(bool(a) and not b for a, b in zip(first, second, strict=True))
    only2 = sum(bool(b) and not a for a, b in zip(first, second, strict=True))
    neither = n - both - only1 - only2
    k1, k2 = both + only1, both + only2
    margins = k1 * (n - k1) * k2 * (n - k2)
    phi = 0.0
    if margins > 0:
        cross = both * neither - only1 * only2
        corrected = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
        phi = corrected / math.sqrt(margins)
    return _square_and_add(k1 / n, wilson_interval(k1, n, z), k2 / n, wilson_interval(k2, n, z), phi)
