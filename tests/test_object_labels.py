"""Object-centric token labels (`vla.object_labels`): attributes, relation flags, nearest-token assignment."""

import pytest
import torch

from envs.scene import COLORS, SHAPES, SIZES
from envs.tasks.base import OBJECT_FIELDS, OBJECT_SLOTS, OUT_OF_VIEW
from vla.object_labels import (
    ATTRIBUTE_NAMES,
    object_attributes,
    point_attributes,
    policy_camera_uv,
    token_targets,
)

F = {n: i for i, n in enumerate(OBJECT_FIELDS)}


def _objects(rows: list[dict]) -> torch.Tensor:
    """One frame's `privileged.objects` [1, SLOTS * F] from dicts (shape, color, size, x, cam_dist, uv)."""
    o = torch.zeros(OBJECT_SLOTS, len(OBJECT_FIELDS))
    for k, r in enumerate(rows):
        o[k, F["present"]] = 1.0
        o[k, F["shape"]] = list(SHAPES).index(r["shape"])
        o[k, F["color"]] = list(COLORS).index(r["color"])
        o[k, F["size"]] = list(SIZES).index(r.get("size", "medium"))
        o[k, F["x"]] = r.get("x", 0.0)
        o[k, F["cam_dist"]] = r.get("cam_dist", 0.8)
        o[k, F["front_u"] : F["front_v"] + 1] = torch.tensor(r.get("uv", (0.0, 0.0)))
        o[k, F["wrist_u"] : F["wrist_v"] + 1] = OUT_OF_VIEW
    return o.view(1, -1)


def _names(attrs: torch.Tensor) -> set[str]:
    return {ATTRIBUTE_NAMES[i] for i in attrs.nonzero().flatten().tolist()}


def test_attributes_and_relations_within_a_shape_pool():
    rows = [
        {"shape": "cube", "color": "red", "x": -0.10, "cam_dist": 0.70, "size": "small"},
        {"shape": "cube", "color": "blue", "x": 0.00, "cam_dist": 0.90, "size": "large"},
        {"shape": "cube", "color": "green", "x": 0.12, "cam_dist": 0.80, "size": "small"},
        {"shape": "sphere", "color": "red", "x": -0.20, "cam_dist": 0.60},  # alone: no relation
    ]
    out = object_attributes(_objects(rows))
    assert out["present"][0].tolist() == [True] * 4 + [False] * (OBJECT_SLOTS - 4)
    attrs = out["attrs"][0]
    assert _names(attrs[0]) == {"shape_cube", "color_red", "size_small", "leftmost", "closest_to_camera"}
    assert _names(attrs[1]) == {"shape_cube", "color_blue", "size_large", "farthest_from_camera", "largest"}
    assert _names(attrs[2]) == {"shape_cube", "color_green", "size_small", "rightmost"}  # smallest is tied
    assert _names(attrs[3]) == {"shape_sphere", "color_red", "size_medium"}
    assert not attrs[4:].any()


def test_relations_need_the_instructions_margin():
    close = [
        {"shape": "cylinder", "color": "red", "x": 0.00},
        {"shape": "cylinder", "color": "blue", "x": 0.02},  # 2 cm apart: below language.MARGIN (4 cm)
    ]
    attrs = object_attributes(_objects(close))["attrs"][0]
    assert not ({"leftmost", "rightmost"} & (_names(attrs[0]) | _names(attrs[1])))
    apart = [dict(close[0]), dict(close[1], x=0.05)]
    attrs = object_attributes(_objects(apart))["attrs"][0]
    assert "leftmost" in _names(attrs[0]) and "rightmost" in _names(attrs[1])


def test_wrong_width_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="re-record"):
        object_attributes(torch.zeros(1, 7))


def test_token_targets_label_the_nearest_token_in_view():
    """A 2x2 token grid per camera, two cameras: the object at (0.4, -0.6) in camera 0 labels that camera's
    token at (0.5, -0.5) only; an object out of view labels nothing; wrist coordinates are out of view."""
    rows = [
        {"shape": "cube", "color": "red", "uv": (0.4, -0.6)},
        {"shape": "sphere", "color": "blue", "uv": (OUT_OF_VIEW, OUT_OF_VIEW)},
    ]
    out = object_attributes(_objects(rows))
    uv = policy_camera_uv(out["uv"], ["front", "wrist"])  # [1, N, 2, 2]
    grid = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    coords = torch.cat(
        [
            torch.cat([grid, torch.tensor([[1.0, 0.0]]).expand(4, 2)], 1),
            torch.cat([grid, torch.tensor([[0.0, 1.0]]).expand(4, 2)], 1),
            torch.zeros(3, 4),
        ],  # text tokens
        0,
    )[None]  # [1, 11, 4]
    labels = token_targets(out["attrs"], out["present"], uv, coords)  # [1, 11, K]
    assert labels.shape == (1, 11, len(ATTRIBUTE_NAMES))
    assert _names(labels[0, 1]) == {"shape_cube", "color_red", "size_medium"}
    assert labels[0, [0, 2, 3]].sum() == 0 and labels[0, 4:].sum() == 0
    # a second object in the same token: the union of both
    rows[1]["uv"] = (0.6, -0.4)
    out = object_attributes(_objects(rows))
    labels = token_targets(
        out["attrs"], out["present"], policy_camera_uv(out["uv"], ["front", "wrist"]), coords
    )
    assert {"shape_cube", "shape_sphere", "color_red", "color_blue"} <= _names(labels[0, 1])


def test_point_attributes_name_the_object_at_the_target_and_none_for_a_place():
    rows = [
        {"shape": "cube", "color": "red", "x": -0.10},
        {"shape": "bin", "color": "blue", "x": 0.10},
    ]
    out = object_attributes(_objects(rows))
    points = torch.tensor([[[0.10, 0.0, 0.0], [-0.105, 0.0, 0.0]], [[0.3, 0.3, 0.0], [-0.10, 0.0, 0.0]]])
    two = {k: v.expand(2, *v.shape[1:]) for k, v in out.items()}
    attrs, has = point_attributes(two, points)  # [2, P=2, K], [2, 2]
    assert has.tolist() == [[True, True], [False, True]]  # (0.3, 0.3) is a place on the table
    assert _names(attrs[0, 0]) == {"shape_bin", "color_blue", "size_medium"}
    assert _names(attrs[0, 1]) == {"shape_cube", "color_red", "size_medium"}
