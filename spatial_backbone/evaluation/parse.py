"""Robust answer parsing: from a model's free text to a prediction comparable with an item's ground truth.

Design: parsing is two steps. `final_answer` strips reasoning wrappers in order of specificity:
SpatialThinker's `<answer>...</answer>`, Spatial-SSRL's `\\boxed{...}` (balanced braces), text after VST-R's
`</think>`; otherwise the whole text. Then one parser per answer type (registry `PARSERS`, keyed like
`sample.ANSWER_TYPES`) reads the
final answer: a choice letter or an option's text; a vocabulary entry; a number with unit (m, cm, mm, meters,
..., converted to the ground truth's unit; number words for small counts); an ordering (tokens in order of
first occurrence); JSON (first decodable `[`/`{` value, with a fallback to the first 4 / 2 numbers for boxes /
points). A parser returns None when it finds nothing; metrics score None as wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_UNITS_TO_M = {
    "mm": 1e-3,
    "millimeter": 1e-3,
    "millimeters": 1e-3,
    "millimetre": 1e-3,
    "millimetres": 1e-3,
    "cm": 1e-2,
    "centimeter": 1e-2,
    "centimeters": 1e-2,
    "centimetre": 1e-2,
    "centimetres": 1e-2,
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
}
_NUMBER_WORDS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}


def _boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return text[i:]  # unclosed: take the rest


def final_answer(text: str) -> str:
    """The answer part of a completion (wrappers stripped, whitespace trimmed)."""
    m = re.findall(r"<answer>(.*?)(?:</answer>|$)", text, flags=re.S)
    if m:
        return m[-1].strip()
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return text.strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9.\- ]+", " ", text.lower())).strip()


def _find_word(text: str, phrase: str) -> int:
    """Position of `phrase` as whole words in normalized `text`, or -1."""
    m = re.search(rf"(?<![a-z0-9]){re.escape(_norm(phrase))}(?![a-z0-9])", text)
    return m.start() if m else -1


def parse_choice(text: str, gt: dict[str, Any]) -> str | None:
    """The chosen letter: a leading letter ('B', '(B)', 'B.'), else the earliest option text, else a lone
    capital letter among the option letters."""
    letters = "ABCDEFGH"[: len(gt["options"])]
    t = text.strip()
    m = re.match(rf"^\(?([{letters}])\)?(?:[.):,]|\s|$)", t)
    if m:
        return m.group(1)
    norm = _norm(t)
    hits = [(p, k) for k, o in enumerate(gt["options"]) if (p := _find_word(norm, o)) >= 0]
    if hits:
        # the longest option wins a tie at the same position ("red cube" over "cube")
        pos, k = min(hits, key=lambda h: (h[0], -len(gt["options"][h[1]])))
        return letters[k]
    m = re.search(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", t)
    return m.group(1) if m else None


def parse_word(text: str, gt: dict[str, Any]) -> str | None:
    """The vocabulary entry occurring first (longest first at equal positions), with light stemming
    ('horizontally' -> 'horizontal', 'backwards' -> 'backward')."""
    norm = _norm(text).replace("horizontally", "horizontal").replace("vertically", "vertical")
    norm = norm.replace("backwards", "backward").replace("forwards", "forward")
    hits = [(p, -len(w), w) for w in gt["vocab"] if (p := _find_word(norm, w)) >= 0]
    return min(hits)[2] if hits else None


def parse_number(text: str, gt: dict[str, Any]) -> float | None:
    """The first number, converted from its unit (if any) to the ground truth's unit."""
    m = re.search(rf"({_NUMBER})\s*([a-zA-Z]+)?", text)
    if not m:
        words = [_NUMBER_WORDS[w] for w in _norm(text).split() if w in _NUMBER_WORDS]
        return float(words[0]) if words else None
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    target = gt.get("unit", "")
    if unit in _UNITS_TO_M and target in _UNITS_TO_M:
        value *= _UNITS_TO_M[unit] / _UNITS_TO_M[target]
    return value


def parse_ordering(text: str, gt: dict[str, Any]) -> list[str] | None:
    """The ground truth's tokens in order of first occurrence (a token never found -> None)."""
    norm = _norm(text)
    pos = {tok: _find_word(norm, tok) for tok in gt.get("tokens", gt["order"])}
    found = sorted((p, tok) for tok, p in pos.items() if p >= 0)
    return [tok for _, tok in found] or None


def first_json(text: str) -> Any:
    """The first JSON value starting at a '[' or '{' that decodes, else None."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            return dec.raw_decode(text[m.start() :])[0]
        except json.JSONDecodeError:
            continue
    return None


def _numbers(text: str, n: int) -> list[float] | None:
    vals = [float(x) for x in re.findall(_NUMBER, text)]
    return vals[:n] if len(vals) >= n else None


def _keyed(value: Any, keys: tuple[str, ...]) -> Any:
    """The first of `keys` in a dict, or in the first dict of a list."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        for k in keys:
            if k in value:
                return value[k]
    return value


def parse_box2d(text: str, gt: dict[str, Any]) -> list[float] | None:
    v = _keyed(first_json(text), ("bbox_2d", "bbox", "box"))
    if isinstance(v, list) and len(v) == 4 and all(isinstance(x, int | float) for x in v):
        return [float(x) for x in v]
    return _numbers(text, 4)


def parse_point(text: str, gt: dict[str, Any]) -> list[float] | None:
    v = _keyed(first_json(text), ("point_2d", "point"))
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        return [float(x) for x in v]
    return _numbers(text, 2)


def parse_boxes3d(text: str, gt: dict[str, Any]) -> list[dict[str, Any]] | None:
    v = first_json(text)
    v = [v] if isinstance(v, dict) else v
    if not isinstance(v, list):
        return None
    out = [
        b
        for b in v
        if isinstance(b, dict)
        and isinstance(b.get("bbox_3d"), list)
        and len(b["bbox_3d"]) == 9
        and all(isinstance(x, int | float) for x in b["bbox_3d"])
    ]
    return out or None


def parse_scene_graph(text: str, gt: dict[str, Any]) -> dict[str, Any] | None:
    v = first_json(text)
    if not isinstance(v, dict) or not isinstance(v.get("objects"), list):
        return None
    objects = [
        o
        for o in v["objects"]
        if isinstance(o, dict) and "id" in o and isinstance(o.get("bbox"), list) and len(o["bbox"]) == 4
    ]
    relations = [
        r
        for r in v.get("relations") or []
        if isinstance(r, dict) and {"subject", "predicate", "object"} <= set(r)
    ]
    return {"objects": objects, "relations": relations}


PARSERS: dict[str, Callable[[str, dict[str, Any]], Any]] = {
    "choice": parse_choice,
    "word": parse_word,
    "number": parse_number,
    "ordering": parse_ordering,
    "box2d": parse_box2d,
    "point": parse_point,
    "boxes3d": parse_boxes3d,
    "scene_graph": parse_scene_graph,
}


def parse(text: str, answer_type: str, gt: dict[str, Any]) -> Any:
    """The prediction in `text` for an item of `answer_type` (None if nothing parseable)."""
    if answer_type not in PARSERS:
        raise KeyError(f"no parser for answer type {answer_type!r}; valid: {sorted(PARSERS)}")
    return PARSERS[answer_type](final_answer(text), gt)
