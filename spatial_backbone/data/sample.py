"""One spatial data item (`Sample`), its answer types and the reward families that can check it.

Design (DESIGN.md section 2, "Skill"):
- A skill returns `Sample`s holding the images (uint8 HxWx3 arrays; the same array object may be shared by
  several samples of a scene and is written once), the question, the *core* answer (the answer without any
  reasoning wrapper), the answer type, the exact ground truth (`gt`, JSON-serializable) and, when it can, a
  ground-truth reasoning chain (`chain`) and the relevant scene graph (`graph`).
- The answer *format* is a second, orthogonal axis chosen afterwards by `formats.apply_format`: plain, VST-R
  `<think>` chain (VST, arXiv 2511.05491), SpatialThinker `<observe>/<scene>/<think>/<answer>` (arXiv
  2511.07403) or Spatial-SSRL `<think>` + `\\boxed{}`. It fills `answer`, `system`, `format` and `reward`.
- `reward` names the reward family that can check the item (`vst`, `spatialthinker`, `ssrl`); the RL code
  dispatches on it and reads `gt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

REWARD_FAMILIES = ("vst", "spatialthinker", "ssrl")
SKILL_FAMILIES = ("single_view", "multi_view", "video", "ssrl", "grounding")


@dataclass(frozen=True)
class AnswerType:
    """How an answer is written and scored.

    name: the registry key stored in every item.
    gt_keys: keys that `Sample.gt` must hold for this type.
    metric: the per-item score used by `spatial_backbone.evaluation.metrics`.
    """

    name: str
    gt_keys: tuple[str, ...]
    metric: str
    description: str


ANSWER_TYPES: dict[str, AnswerType] = {}


def register_answer_type(t: AnswerType) -> AnswerType:
    if t.name in ANSWER_TYPES:
        raise ValueError(f"answer type {t.name!r} is already registered")
    ANSWER_TYPES[t.name] = t
    return t


for _t in (
    AnswerType("choice", ("letter", "options"), "accuracy", "one letter among lettered options (A-D)"),
    AnswerType(
        "word", ("word", "vocab"), "accuracy", "one entry of a closed vocabulary (yes/no, left/right...)"
    ),
    AnswerType("number", ("value", "unit"), "mra", "a number with a unit ('0.23 m', '12.5 cm') or a count"),
    AnswerType("ordering", ("order",), "exact", "a sequence of tokens ('2, 3, 1' or object names in order)"),
    AnswerType(
        "box2d", ("bbox", "label"), "iou", 'JSON [{"bbox_2d": [x1, y1, x2, y2], "label": ...}] (pixels)'
    ),
    AnswerType(
        "point", ("point", "bbox", "label"), "point_in_box", 'JSON [{"point_2d": [x, y], "label": ...}]'
    ),
    AnswerType(
        "boxes3d", ("boxes",), "box3d", 'VST JSON [{"label", "bbox_3d": [x,y,z,dx,dy,dz,pitch,yaw,roll]}]'
    ),
    AnswerType("scene_graph", ("objects", "relations"), "graph", "SpatialThinker JSON {objects, relations}"),
):
    register_answer_type(_t)


@dataclass
class Sample:
    """One question about one scene. See the module docstring for the two-stage construction."""

    skill: str
    question: str
    answer_type: str
    core: str
    gt: dict[str, Any]
    images: list[np.ndarray]
    chain: str = ""
    graph: dict[str, Any] | None = None
    observe: str = ""
    formats: tuple[str, ...] = ("plain", "think")
    meta: dict[str, Any] = field(default_factory=dict)
    # filled by formats.apply_format
    format: str = ""
    answer: str = ""
    system: str | None = None
    reward: str = ""

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"unknown answer_type {self.answer_type!r}; valid: {sorted(ANSWER_TYPES)}")
        missing = [k for k in ANSWER_TYPES[self.answer_type].gt_keys if k not in self.gt]
        if missing:
            raise ValueError(f"skill {self.skill!r}: gt {self.gt!r} lacks {missing} for {self.answer_type!r}")
        for img in self.images:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(
                    f"skill {self.skill!r}: images must be uint8 HxWx3, got {img.dtype} {img.shape}"
                )

    def record(self, image_paths: list[str]) -> dict[str, Any]:
        """The JSON record written to disk (see `io.py` for the format)."""
        return {
            "skill": self.skill,
            "answer_type": self.answer_type,
            "format": self.format,
            "reward": self.reward,
            "images": image_paths,
            "system": self.system,
            "question": self.question,
            "answer": self.answer,
            "core_answer": self.core,
            "gt": self.gt,
            "meta": self.meta,
        }
