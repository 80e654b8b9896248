"""The text the tiny backbones' tokenizer is trained on: the project's own instruction and question language.

Design: a byte-level BPE needs a corpus that looks like what the model will read and write: robot instructions
that name objects by spatial relations, spatial questions, and answers in every format we use (short words,
choice letters, numbers with units, JSON boxes, `<think>` chains, SpatialThinker tags, `\\boxed{}`). The
corpus is generated deterministically from word lists and templates (a fixed seed), so the same code always
trains the same tokenizer. Bump `CORPUS_VERSION` when the text changes: the tokenizer is saved with every
checkpoint, so old checkpoints keep the tokenizer they were trained with.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator

from spatial_backbone.data.templates import (
    SPATIALTHINKER_SYSTEM_PROMPT,
    SSRL_SYSTEM_PROMPT,
    corpus_questions,
    corpus_words,
)

# 2: the spatial data's question templates, answer vocabularies and SpatialThinker / SSRL system prompts.
CORPUS_VERSION = 2

COLORS = [
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "cyan",
    "pink",
    "white",
    "black",
    "gray",
    "brown",
]
SHAPES = ["cube", "sphere", "ball", "cylinder", "plate", "bin", "block", "box", "object", "can"]
SIZES = ["small", "medium", "large", "big", "tiny", "smaller", "larger", "bigger", "taller", "shorter"]
RELATIONS = [
    "left of",
    "right of",
    "in front of",
    "behind",
    "above",
    "below",
    "closest to",
    "farthest from",
    "next to",
    "on top of",
    "under",
    "between",
    "to the left of",
    "to the right of",
    "nearer to the camera than",
    "farther from the camera than",
    "leftmost",
    "rightmost",
    "nearest",
    "farthest",
    "highest",
    "lowest",
]
VERBS = [
    "pick up",
    "put",
    "place",
    "push",
    "stack",
    "touch",
    "reach",
    "lift",
    "move",
    "grasp",
    "drop",
    "slide",
]
QUESTIONS = [
    "Which object is closer to the camera, the {a} or the {b}?",
    "Is the {a} to the left or to the right of the {b}?",
    "From the camera's view, is the {a} {rel} the {b}?",
    "What is the distance between the {a} and the {b} in meters?",
    "How tall is the {a} in centimeters?",
    "Which is larger, the {a} or the {b}?",
    "Which is taller, the {a} or the {b}?",
    "How many {shape}s are there in the image?",
    "Is there a {a} in the scene?",
    "Which object is closest to the {a}?",
    "Output the 2D bounding box of the {a} in pixels as JSON.",
    "Detect all objects and output their 3D bounding boxes in the camera frame as JSON.",
    "Describe the scene as a graph of objects with boxes and relations.",
    "How did the camera move between the first and the second view?",
    "Which point in the second image corresponds to the marked point in the first image?",
    "In which order do the objects first appear in the video?",
    "How many distinct objects appear in the video?",
    "If I am standing at the {a} facing the {b}, is the {c} to my left, right, or behind me?",
    "How far did the camera travel in total?",
    "The image was split into 4 patches and shuffled. What is the original order?",
    "One patch of the image was flipped. Which patch, and horizontally or vertically?",
    "Which of the 4 candidate patches fills the masked region?",
    "Order the 3 marked points from nearest to farthest.",
    "Is region 1 to the left, right, front or back of region 2?",
]
INSTRUCTIONS = [
    "{verb} the {a}",
    "{verb} the {a} {rel} the {b}",
    "put the {a} on the {b}",
    "stack the {a} on the {b}",
    "push the {a} to the left of the {b}",
    "touch the {shape} {rel} the {b}",
    "put the {size} {shape} in the bin",
    "pick up the {shape}",
    "stack the smaller cube on the larger one",
    "put the leftmost cube on the plate",
]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a helpful assistant. You should first think about the reasoning process in the mind and then "
    "provide the user with the answer. The reasoning process is enclosed within <think> </think> tags, i.e. "
    "<think> reasoning process here </think> answer here.",
    "You are a robot. Follow the instruction and output the next actions.",
    SPATIALTHINKER_SYSTEM_PROMPT,
    SSRL_SYSTEM_PROMPT,
]
ANSWER_WORDS = [
    "yes",
    "no",
    "left",
    "right",
    "front",
    "back",
    "above",
    "below",
    "up",
    "down",
    "forward",
    "backward",
    "horizontally",
    "vertically",
    "clockwise",
    "counterclockwise",
    "same",
    "none",
]


def _objects(rng: random.Random) -> str:
    return f"{rng.choice(SIZES) + ' ' if rng.random() < 0.3 else ''}{rng.choice(COLORS)} {rng.choice(SHAPES)}"


def _number(rng: random.Random) -> str:
    return rng.choice([f"{rng.uniform(0, 2):.2f}", f"{rng.uniform(0, 100):.1f}", str(rng.randint(0, 640))])


def _answer(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(ANSWER_WORDS + [_objects(rng)])
    if kind == 1:
        return f"{rng.choice('ABCD')}. {_objects(rng)}"
    if kind == 2:
        return f"{_number(rng)} {rng.choice(['m', 'cm', 'meters', 'centimeters', 'degrees'])}"
    if kind == 3:
        boxes = [{"label": _objects(rng), "bbox_3d": [round(rng.uniform(-1, 1), 2) for _ in range(9)]}]
        return json.dumps(boxes)
    if kind == 4:
        scene = {
            "objects": [
                {"id": f"{rng.choice(SHAPES)}.{i}", "bbox": [rng.randint(0, 224) for _ in range(4)]}
                for i in range(2)
            ],
            "relations": [{"subject": "cube.0", "predicate": rng.choice(RELATIONS), "object": "cube.1"}],
        }
        return (
            f"<observe>{_objects(rng)}</observe><scene>{json.dumps(scene)}</scene><think>...</think>"
            f"<answer>{rng.choice('ABCD')}</answer>"
        )
    if kind == 5:
        return (
            f"<think>The {_objects(rng)} is {rng.choice(RELATIONS)} the {_objects(rng)}.</think> "
            f"\\boxed{{{rng.choice(['1,2,3,4', '2 horizontal', 'B', '3 1 2', 'left'])}}}"
        )
    return f"<think>The {_objects(rng)} is at depth {_number(rng)} m.</think> {rng.choice(ANSWER_WORDS)}"


def corpus_lines(n_random: int = 3000, seed: int = 0) -> Iterator[str]:
    """Yield the tokenizer corpus: every word list entry, then `n_random` templated lines (fixed seed)."""
    # Chat scaffolding wraps every sample, so it is weighted as often as it will be read.
    for _ in range(max(1, n_random // 10)):
        yield from SYSTEM_PROMPTS[:2]
        yield from ("system\n", "user\n", "assistant\n")
    yield from SYSTEM_PROMPTS
    yield "Picture 1: Picture 2: Video 1: Image 1: Image 2: Frame 1: Frame 2:"
    yield " ".join(COLORS + SHAPES + SIZES + RELATIONS + VERBS + ANSWER_WORDS)
    yield " ".join(corpus_words())
    yield from (f"the {c} {s}" for c, s in itertools.product(COLORS, SHAPES))
    yield " ".join(str(i) for i in range(256))
    rng = random.Random(seed)
    data_questions = corpus_questions()
    for _ in range(n_random):
        fields = {
            "a": _objects(rng),
            "b": _objects(rng),
            "c": _objects(rng),
            "rel": rng.choice(RELATIONS),
            "shape": rng.choice(SHAPES),
            "size": rng.choice(SIZES),
            "verb": rng.choice(VERBS),
            "unit": rng.choice(["meters", "centimeters"]),
            "options": f"A. {_objects(rng)}\nB. {_objects(rng)}",
        }
        yield rng.choice(QUESTIONS + INSTRUCTIONS + data_questions).format(**fields)
        yield _answer(rng)
