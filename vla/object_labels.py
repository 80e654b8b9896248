"""What each image token shows: object-centric labels from the recorded scene (`privileged.objects`).

Why (sessions 13-18): the tiny policy finds the object the words name when they name its colour (Lift, 2-5 cm
at rollout) and misses it by the candidates' spacing when they name a relation (11-18 cm): "the leftmost
cube" needs tokens that already say "cube" and "the leftmost of the cubes" before a pointer can pick them
out, and the action and pointer losses teach that only through one chosen token per frame. The simulator
knows every object, so each image token gets a multi-hot label of the objects whose centre it holds: shape,
colour and size (what the words name) and the relations a shape pool can be singled out by without an anchor
(leftmost / rightmost, closest to / farthest from the camera, largest / smallest, with `language.MARGIN` as
the instructions use). A linear probe on the tokens the pointers read (`vla.heads.grounding`) is trained on
them: dense perception supervision of the backbone, as object-centric auxiliaries and scene-graph
prediction are in sim-trained policies and in SpatialThinker's scene-graph rewards. Nothing here is a
policy input.

`object_attributes` is a pure function of the recorded vector; `token_targets` assigns each object to the
token nearest its centre in every camera it is seen by, the same nearest-token rule as the pointers'
cross-entropy (`TargetPointers.token_ce`).
"""

from __future__ import annotations

import torch

from envs.scene import COLORS, SHAPES, SIZES
from envs.tasks.base import OBJECT_FIELDS, OBJECT_SLOTS, OUT_OF_VIEW, PRIVILEGED_CAMERAS
from envs.tasks.language import MARGIN

RELATION_FLAGS = ("leftmost", "rightmost", "closest_to_camera", "farthest_from_camera", "largest", "smallest")
ATTRIBUTE_NAMES = (
    tuple(f"shape_{s}" for s in SHAPES)
    + tuple(f"color_{c}" for c in COLORS)
    + tuple(f"size_{s}" for s in SIZES)
    + RELATION_FLAGS
)
N_ATTRIBUTES = len(ATTRIBUTE_NAMES)
POINT_TOLERANCE = 0.02  # m: a target/goal point this close to an object's centre is that object
_F = {name: i for i, name in enumerate(OBJECT_FIELDS)}


def _one_hot(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(idx.long().clamp(0, n - 1), n).float()


def _extreme_flag(key: torch.Tensor, pool: torch.Tensor, highest: bool, margin: float) -> torch.Tensor:
    """key [B, N], pool [B, N, N] (same-shape pairs, both present) -> [B, N]: the object beats every other
    member of its pool by `margin` in the `highest` / lowest direction, and its pool has two or more."""
    diff = (key[:, :, None] - key[:, None, :]) * (1.0 if highest else -1.0)  # [B, N, N] i over j
    others = pool & ~torch.eye(key.shape[1], dtype=torch.bool, device=key.device)  # [B, N, N]
    wins = (diff >= margin) | ~others  # [B, N, N]
    return (wins.all(-1) & others.any(-1)).float()  # [B, N]


def object_attributes(objects: torch.Tensor) -> dict[str, torch.Tensor]:
    """The recorded `privileged.objects` [B, OBJECT_SLOTS * F] -> `attrs` [B, N, K] (multi-hot over
    `ATTRIBUTE_NAMES`), `present` [B, N] (bool) and `uv` [B, N, len(PRIVILEGED_CAMERAS), 2]."""
    b = objects.shape[0]
    if objects.shape[-1] != OBJECT_SLOTS * len(OBJECT_FIELDS):
        raise ValueError(
            f"privileged.objects has {objects.shape[-1]} values per frame but this version records "
            f"{OBJECT_SLOTS} slots x {len(OBJECT_FIELDS)} fields; re-record the dataset with svla-record"
        )
    o = objects.float().view(b, OBJECT_SLOTS, len(OBJECT_FIELDS))  # [B, N, F]
    present = o[..., _F["present"]] > 0.5  # [B, N]
    shape, size = o[..., _F["shape"]], o[..., _F["size"]]  # [B, N]
    same = (shape[:, :, None] == shape[:, None, :]) & present[:, :, None] & present[:, None, :]  # [B, N, N]
    flags = [
        _extreme_flag(o[..., _F["x"]], same, highest=False, margin=MARGIN),
        _extreme_flag(o[..., _F["x"]], same, highest=True, margin=MARGIN),
        _extreme_flag(o[..., _F["cam_dist"]], same, highest=False, margin=MARGIN),
        _extreme_flag(o[..., _F["cam_dist"]], same, highest=True, margin=MARGIN),
        _extreme_flag(size, same, highest=True, margin=0.5),
        _extreme_flag(size, same, highest=False, margin=0.5),
    ]
    attrs = torch.cat(
        [
            _one_hot(shape, len(SHAPES)),
            _one_hot(o[..., _F["color"]], len(COLORS)),
            _one_hot(size, len(SIZES)),
            torch.stack(flags, dim=-1),
        ],
        dim=-1,
    )  # [B, N, K]
    attrs = attrs * present[..., None]
    uv_cols = [_F[f"{c}_u"] for c in PRIVILEGED_CAMERAS]
    uv = torch.stack([o[..., i : i + 2] for i in uv_cols], dim=2)  # [B, N, C, 2]
    xyz = o[..., _F["x"] : _F["z"] + 1]  # [B, N, 3]
    return {"attrs": attrs, "present": present, "uv": uv, "xyz": xyz}


def point_attributes(
    objects: dict[str, torch.Tensor], points: torch.Tensor, tol: float = POINT_TOLERANCE
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attributes of the object at each privileged point (target, goal): points [B, P, 3] (metres, world)
    -> attrs [B, P, K] of the nearest present object and has [B, P] (an object lies within `tol`; a goal that
    is a place, not an object, has none)."""
    dist = (points[:, :, None] - objects["xyz"][:, None]).norm(dim=-1)  # [B, P, N]
    dist = dist.masked_fill(~objects["present"][:, None], float("inf"))
    best = dist.min(-1)  # [B, P]
    idx = best.indices[..., None].expand(-1, -1, objects["attrs"].shape[-1])  # [B, P, K]
    return objects["attrs"].gather(1, idx), best.values < tol


def policy_camera_uv(uv: torch.Tensor, cameras: list[str]) -> torch.Tensor:
    """uv [B, N, len(PRIVILEGED_CAMERAS), 2] -> [B, N, len(cameras), 2] in the policy's camera order;
    `OUT_OF_VIEW` for a policy camera the recording has no coordinates for."""
    out = uv.new_full((*uv.shape[:2], len(cameras), 2), OUT_OF_VIEW)
    for c, cam in enumerate(cameras):
        if cam in PRIVILEGED_CAMERAS:
            out[:, :, c] = uv[:, :, PRIVILEGED_CAMERAS.index(cam)]
    return out


def token_targets(
    attrs: torch.Tensor, present: torch.Tensor, uv: torch.Tensor, token_coords: torch.Tensor
) -> torch.Tensor:
    """Multi-hot labels per token [B, S, K]: the union of the attributes of the objects whose centre is
    nearest that token, in each camera the object is in view of (|u|, |v| <= 1); zeros elsewhere (the table,
    the robot, text tokens). attrs [B, N, K], present [B, N], uv [B, N, C, 2] (policy cameras),
    token_coords [B, S, 2 + C] (the tokens' (u, v) and camera one-hot)."""
    c = uv.shape[2]
    xy = token_coords[..., :2]  # [B, S, 2]
    on_cam = torch.stack([token_coords[..., 2 + i] > 0.5 for i in range(c)], dim=1)  # [B, C, S]
    dist = (uv[..., None, :] - xy[:, None, None]).pow(2).sum(-1)  # [B, N, C, S]
    dist = dist.masked_fill(~on_cam[:, None], float("inf"))
    nearest = torch.nn.functional.one_hot(dist.argmin(-1), dist.shape[-1]).float()  # [B, N, C, S]
    seen = (uv.abs() <= 1.0).all(-1) & present[..., None] & on_cam.any(-1)[:, None]  # [B, N, C]
    holds = (nearest * seen[..., None]).amax(2)  # [B, N, S] object n's centre is nearest token s
    return (holds[..., None] * attrs[:, :, None, :]).amax(1)  # [B, S, K]
