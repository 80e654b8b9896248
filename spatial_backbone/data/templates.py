"""Question templates, answer vocabularies and system prompts of the spatial data (no mujoco import).

Design: every question a skill asks comes from `QUESTIONS[skill]` (a few paraphrases per skill, `str.format`
fields named below), and every closed-set answer from a vocabulary here. The tiny backbones' tokenizer is
trained on `spatial_backbone.corpus`, which imports this module, so the words the data uses are the words the
tokenizer
merges. Keep this module import-light: the tokenizer is built without mujoco.

Fields: {a}, {b}, {c} object phrases ("red cube"), {unit} ("meters"/"centimeters"), {shape} (a shape word),
{rel} (a relation phrase), {n} (a count), {options} (lettered options, one per line).
"""

from __future__ import annotations

# SpatialThinker (arXiv 2511.07403) asks for observation, scene graph, reasoning and answer in tags.
SPATIALTHINKER_SYSTEM_PROMPT = (
    "You are a helpful assistant. First describe what you observe in <observe> </observe>, then write the "
    "relevant scene graph as JSON in <scene> </scene> (objects with id and bbox in pixels, relations with "
    "subject, predicate, object), then reason in <think> </think>, and give the final answer in "
    "<answer> </answer>."
)
# Spatial-SSRL: reasoning in <think> tags, the final answer in \boxed{}.
SSRL_SYSTEM_PROMPT = (
    "You are a helpful assistant. First think about the reasoning process in <think> </think> tags, then "
    "give "
    "the final answer in \\boxed{}."
)

YES_NO = ["yes", "no"]
LEFT_RIGHT = ["left", "right"]
ABOVE_BELOW = ["above", "below"]
EGO_DIRECTIONS = ["left", "right"]
CAMERA_MOTIONS = ["left", "right", "up", "down", "forward", "backward"]
REGION_DIRECTIONS = ["left", "right", "front", "back"]
FLIP_ANSWERS = [f"{i} {d}" for i in range(1, 5) for d in ("horizontal", "vertical")]
# 3D relations in the camera frame (X right, Y down, Z forward): phrase -> (axis, sign of subject - object).
RELATIONS_3D = {
    "to the left of": (0, -1),
    "to the right of": (0, 1),
    "above": (1, -1),
    "below": (1, 1),
    "in front of": (2, -1),
    "behind": (2, 1),
}

QUESTIONS: dict[str, list[str]] = {
    "depth_comparison": [
        "Which object is closer to the camera?\n{options}",
        "Which of these is nearer to the camera?\n{options}",
    ],
    "relative_position_2d": [
        "In the image, is the {a} to the left or to the right of the {b}?",
        "In the image, is the {a} above or below the {b}?",
    ],
    "relative_position_3d": [
        "From the camera's view, is the {a} {rel} the {b}? Answer yes or no.",
    ],
    "distance": [
        "What is the distance between the centers of the {a} and the {b} in {unit}?",
        "How far apart are the {a} and the {b}, center to center, in {unit}?",
    ],
    "object_size": [
        "How tall is the {a} in {unit}?",
        "What is the longest side of the {a}'s bounding box in {unit}?",
    ],
    "size_comparison": [
        "Which object is larger?\n{options}",
        "Which of these has the bigger volume?\n{options}",
    ],
    "height_comparison": ["Which object is taller?\n{options}", "Which of these reaches higher?\n{options}"],
    "counting": ["How many {shape}s are there in the image?", "How many {shape} objects can you see?"],
    "existence": ["Is there a {a} in the image? Answer yes or no.", "Can you see a {a}? Answer yes or no."],
    "closest_object": ["Which object is closest to the {a}?\n{options}"],
    "box_2d": ["Output the 2D bounding box of the {a} in pixels as JSON."],
    "boxes_3d": [
        "Detect all objects and output their 3D bounding boxes in the camera frame as JSON "
        "(x, y, z, x_size, y_size, z_size in meters; pitch, yaw, roll in radians).",
    ],
    "scene_graph": [
        "Describe the scene as a graph: objects with ids and 2D boxes in pixels, and their spatial "
        "relations, "
        "as JSON.",
    ],
    "camera_motion": [
        "Image 1 and image 2 show the same table. In which direction did the camera move from the first view "
        "to the second: left, right, up, down, forward or backward?",
    ],
    "cross_view_correspondence": [
        "A point is marked in the first image. Which lettered point in the second image shows the same "
        "place?\n{options}",
    ],
    "cross_view_relation": [
        "The {a} is visible in the first image and the {b} in the second. From the first camera's view, is "
        "the {b} to the left or to the right of the {a}?",
    ],
    "appearance_order": [
        "The frames are taken along a camera path. In which order do these objects first appear: {a}? "
        "List them from first to last.",
    ],
    "video_count": ["The frames are taken along a camera path. How many distinct objects appear in total?"],
    "egocentric_direction": [
        "If I am standing at the {a} facing the {b}, is the {c} to my left or to my right?",
    ],
    "travel_distance": [
        "The frames are taken along a straight camera path. How far did the camera travel from the first "
        "frame "
        "to the last, in {unit}?",
    ],
    "patch_shuffle": [
        "The image was split into 4 patches (1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right) and the "
        "patches were shuffled. For each position in reading order, which original patch is shown there?",
    ],
    "patch_flip": [
        "The image was split into 4 patches (1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right) and one "
        "patch was flipped. Which patch, and was it flipped horizontal or vertical?",
    ],
    "crop_inpainting": [
        "A square region of the first image is masked in gray. Which candidate in the second image fills "
        "it?\n{options}",
    ],
    "depth_ordering": ["Order the 3 marked points from nearest to farthest from the camera."],
    "relative_3d_marked": [
        "Two regions are marked 1 and 2. From the camera's view, is region 1 to the left, right, front or "
        "back "
        "of region 2?",
    ],
    "grounding_point": [
        "Point to the {a}. Answer with its 2D point in pixels as JSON.",
        "Where is the {a}? Give its center point in pixels as JSON.",
    ],
    "grounding_box": ["Find the {a} and output its 2D bounding box in pixels as JSON."],
    "grounding_choice": ["Which marked object is the {a}?\n{options}"],
}

# Referring expressions for grounding, from the simplest to relational. {c}: color, {s}: shape word.
REFERRING = {
    "color_shape": "{c} {s}",
    "shape": "{s}",
    "color": "{c} object",
    "leftmost": "leftmost {s}",
    "rightmost": "rightmost {s}",
    "nearest": "{s} nearest to the camera",
    "farthest": "{s} farthest from the camera",
}

UNITS = {"meters": ("m", 1.0), "centimeters": ("cm", 100.0)}


def corpus_questions() -> list[str]:
    """Every template (with its fields unfilled), for the tokenizer corpus."""
    return [q for qs in QUESTIONS.values() for q in qs]


def corpus_words() -> list[str]:
    """Answer vocabularies, relation phrases and referring expressions, for the tokenizer corpus."""
    words = YES_NO + LEFT_RIGHT + ABOVE_BELOW + CAMERA_MOTIONS + REGION_DIRECTIONS + FLIP_ANSWERS
    return (
        words + list(RELATIONS_3D) + list(REFERRING.values()) + [u for u, _ in UNITS.values()] + list(UNITS)
    )
