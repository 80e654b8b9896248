"""Answer formats: how a skill's core answer is written, and the reasoning wrappers around it.

Two axes (see `sample.py`):
1. Core answers, one writer per answer type: a short word ("left"), a choice letter ("B") with lettered
   options in the question, a number with unit ("0.23 m"), an ordering ("2, 3, 1"), Qwen2.5-VL grounding JSON
   (`[{"bbox_2d": [x1, y1, x2, y2], "label": "red cube"}]`, `[{"point_2d": [x, y], ...}]`), VST 3D boxes
   (`[{"label", "bbox_3d": [x, y, z, x_size, y_size, z_size, pitch, yaw, roll]}]`, camera frame, VST arXiv
   2511.05491) and SpatialThinker scene graphs (`{"objects": [{"id": "name.N", "bbox": [...]}], "relations":
   [{"subject", "predicate", "object"}]}`, arXiv 2511.07403).
2. Wrappers, a registry `FORMATS`: `plain` (core only), `think` (VST-R: `<think>chain</think> core` with VST's
   thinking system prompt), `spatialthinker` (`<observe>...</observe><scene>graph</scene><think>...</think>
   <answer>core</answer>`), `boxed` (Spatial-SSRL: `<think>chain</think> \\boxed{core}`). Each names the
   reward family that checks it; scene-graph items are checked by `spatialthinker` whatever their wrapper.
   Chains are built from ground truth by the skills, so reasoning data is exact, not teacher-generated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_backbone.data.sample import Sample
from spatial_backbone.data.templates import SPATIALTHINKER_SYSTEM_PROMPT, SSRL_SYSTEM_PROMPT
from spatial_backbone.prompts import THINK_SYSTEM_PROMPT

LETTERS = "ABCDEFGH"


# -- core answer writers
# ----------------------------------------------------------------------------------------
def options_text(options: list[str]) -> str:
    """'A. red cube\\nB. blue ball' for the question."""
    return "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(options))


def choice_gt(options: list[str], correct: int) -> tuple[str, dict[str, Any]]:
    """(core, gt) of a multiple-choice answer."""
    return LETTERS[correct], {"letter": LETTERS[correct], "options": list(options), "index": correct}


def word_gt(word: str, vocab: list[str]) -> tuple[str, dict[str, Any]]:
    if word not in vocab:
        raise ValueError(f"answer {word!r} not in vocabulary {vocab!r}")
    return word, {"word": word, "vocab": list(vocab)}


def number_gt(value: float, unit: str, decimals: int = 2) -> tuple[str, dict[str, Any]]:
    """'0.23 m' / '12.5 cm' / '3' (unit '' for counts)."""
    v = round(float(value), decimals) if decimals else int(round(value))
    core = f"{v} {unit}".strip()
    return core, {"value": v, "unit": unit}


def ordering_gt(order: list[str], tokens: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    return ", ".join(order), {"order": list(order), "tokens": list(tokens or order)}


def box2d_gt(bbox: list[int], label: str) -> tuple[str, dict[str, Any]]:
    core = json.dumps([{"bbox_2d": [int(v) for v in bbox], "label": label}])
    return core, {"bbox": [int(v) for v in bbox], "label": label}


def point_gt(point: tuple[float, float], bbox: list[int], label: str) -> tuple[str, dict[str, Any]]:
    p = [int(round(point[0])), int(round(point[1]))]
    return json.dumps([{"point_2d": p, "label": label}]), {"point": p, "bbox": list(bbox), "label": label}


def boxes3d_gt(boxes: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return json.dumps(boxes), {"boxes": boxes}


def graph_gt(objects: list[dict[str, Any]], relations: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
    g = {"objects": objects, "relations": relations}
    return json.dumps(g), g


# -- wrappers
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    """A wrapper around the core answer.

    reward: the reward family that checks items in this format.
    system: the system prompt that asks for this format (None: no system turn).
    applies: whether a sample can be written this way. write: sample -> full answer text.
    """

    name: str
    reward: str
    system: str | None
    applies: Callable[[Sample], bool]
    write: Callable[[Sample], str]


def _spatialthinker(s: Sample) -> str:
    scene = json.dumps(s.graph)
    return (
        f"<observe>{s.observe}</observe>\n<scene>{scene}</scene>\n<think>{s.chain}</think>\n"
        f"<answer>{s.core}</answer>"
    )


FORMATS: dict[str, Format] = {}


def register_format(f: Format) -> Format:
    if f.name in FORMATS:
        raise ValueError(f"format {f.name!r} is already registered")
    FORMATS[f.name] = f
    return f


register_format(Format("plain", "vst", None, lambda s: True, lambda s: s.core))
register_format(
    Format(
        "think",
        "vst",
        THINK_SYSTEM_PROMPT,
        lambda s: bool(s.chain),
        lambda s: f"<think>{s.chain}</think> {s.core}",
    )
)
register_format(
    Format(
        "spatialthinker",
        "spatialthinker",
        SPATIALTHINKER_SYSTEM_PROMPT,
        lambda s: s.graph is not None and s.answer_type in ("choice", "word") and bool(s.chain),
        _spatialthinker,
    )
)
register_format(
    Format(
        "boxed",
        "ssrl",
        SSRL_SYSTEM_PROMPT,
        lambda s: True,
        lambda s: f"<think>{s.chain}</think> \\boxed{{{s.core}}}",
    )
)

# Answer types whose ground truth only one reward family can score, whatever the wrapper.
REWARD_BY_ANSWER_TYPE = {"scene_graph": "spatialthinker", "boxes3d": "vst"}


def apply_format(s: Sample, name: str, system_prompt: bool = True) -> Sample:
    """Fill `answer`, `system`, `format` and `reward` of `s` (in place; returned for chaining)."""
    if name not in FORMATS:
        raise KeyError(f"unknown format {name!r}; valid: {sorted(FORMATS)}")
    f = FORMATS[name]
    if not f.applies(s):
        raise ValueError(f"format {name!r} does not apply to a {s.skill!r} item ({s.answer_type})")
    s.format, s.answer = name, f.write(s)
    s.system = f.system if system_prompt else None
    s.reward = REWARD_BY_ANSWER_TYPE.get(s.answer_type, f.reward)
    return s


def choose_format(s: Sample, rng: np.random.Generator, think: float, spatialthinker: float) -> str:
    """Pick a format allowed by the skill: `spatialthinker` / `think` with the given probabilities when they
    apply, else the skill's first allowed format."""
    allowed = [n for n in s.formats if FORMATS[n].applies(s)]
    if not allowed:
        raise ValueError(f"no format of {s.formats!r} applies to a {s.skill!r} item")
    u = rng.random()
    if "spatialthinker" in allowed and u < spatialthinker:
        return "spatialthinker"
    if "think" in allowed and u < spatialthinker + think:
        return "think"
    rest = [n for n in allowed if n not in ("think", "spatialthinker")]
    return rest[0] if rest else allowed[0]
