"""Policy checkpoints: written atomically, loaded back into an identical policy.

Layout of a checkpoint directory: backbone/            Qwen2.5-VL `save_pretrained` (weights, config,
processor incl. tokenizer) head.safetensors     action head + normalizer buffers (policy state minus the
backbone) policy.yaml          the PolicyConfig (backbone.name_or_path points at ./backbone on load)
stats.json           dataset statistics used for normalization features.json        camera keys, state and
action dims the policy was trained on training_state.pt    (train checkpoints only) optimizer, scheduler, RNG
states, step Writes go to a temporary sibling directory renamed into place, so a crash never leaves a half
checkpoint.

Other policy types (peer baselines) write their own layout plus `policy_type.txt` naming the type;
`load_policy` dispatches on it through `LOADERS` (no file = this SpatialVLA layout, so old checkpoints load).
Every type writes `features.json` and `policy.yaml`, which `svla-eval` reads.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from envs.atomic import atomic_dir
from envs.hydra_utils import to_config, to_yaml
from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import set_image_limits
from vla.config import PolicyConfig
from vla.normalize import Normalizer
from vla.policy import SpatialVLAPolicy, base_state_dict

log = logging.getLogger(__name__)
REQUIRED = ("backbone/config.json", "head.safetensors", "policy.yaml", "stats.json", "features.json")
POLICY_TYPE_FILE = "policy_type.txt"
DEFAULT_POLICY_TYPE = "spatial_vla"
# policy type -> "module:function(ckpt_dir, device)" returning the policy (imported when used)
LOADERS = {
    DEFAULT_POLICY_TYPE: "vla.checkpoint:load_spatial_vla",
    "act": "vla.baselines.act_policy:load_act_policy",
}


class CheckpointError(ValueError):
    pass


def policy_features(policy: SpatialVLAPolicy) -> dict:
    return {
        "cameras": list(policy.cfg.cameras),
        "state_dim": policy.dims.state_dim,
        "action_dim": policy.dims.action_dim,
        "chunk_size": policy.cfg.chunk_size,
    }


def _write_policy(policy: SpatialVLAPolicy, path: Path) -> None:
    policy.backbone.save_pretrained(path / "backbone", state_dict=base_state_dict(policy.backbone))
    policy.processor.hf.save_pretrained(path / "backbone")
    head_state = {
        k: v.detach().contiguous().cpu()
        for k, v in policy.state_dict().items()
        if not k.startswith("backbone.") or "lora_" in k
    }
    save_file(head_state, str(path / "head.safetensors"))
    (path / "policy.yaml").write_text(to_yaml(policy.cfg))
    (path / "stats.json").write_text(json.dumps(policy.processor.stats, indent=1))
    (path / "features.json").write_text(json.dumps(policy_features(policy), indent=1))


def save_policy(
    policy: SpatialVLAPolicy,
    out_dir: str | os.PathLike,
    training_state: dict | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a policy checkpoint atomically; `extra_files` (name -> text) are written beside it."""

    def write(tmp: Path):
        _write_policy(policy, tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if training_state is not None:
            torch.save(training_state, tmp / "training_state.pt")

    return atomic_dir(Path(out_dir), write)


def policy_type(ckpt_dir: str | os.PathLike) -> str:
    """The policy type a checkpoint records (`spatial_vla` when it records none)."""
    marker = Path(ckpt_dir) / POLICY_TYPE_FILE
    return marker.read_text().strip() if marker.is_file() else DEFAULT_POLICY_TYPE


def load_policy(ckpt_dir: str | os.PathLike, device: str = "auto"):
    """Load any policy checkpoint: the loader is chosen by the type the checkpoint records."""
    kind = policy_type(ckpt_dir)
    if kind not in LOADERS:
        raise CheckpointError(
            f"{ckpt_dir} records policy type {kind!r} ({POLICY_TYPE_FILE}); known types: {sorted(LOADERS)}"
        )
    module, fn = LOADERS[kind].split(":")
    return getattr(importlib.import_module(module), fn)(ckpt_dir, device=device)


def load_spatial_vla(ckpt_dir: str | os.PathLike, device: str = "auto") -> SpatialVLAPolicy:
    path = Path(ckpt_dir)
    missing = [f for f in REQUIRED if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"{path} is not a spatial-vla policy checkpoint: missing {missing}")
    cfg = to_config(OmegaConf.load(path / "policy.yaml"), PolicyConfig)
    bb = dataclasses.asdict(cfg.backbone) | {
        "name_or_path": str((path / "backbone").resolve()),
        "device": device,
    }
    bb["image_size"] = cfg.backbone.image_size
    cfg.backbone = BackboneConfig(**bb)
    stats = json.loads((path / "stats.json").read_text())
    policy = SpatialVLAPolicy(cfg, stats)
    state = load_file(str(path / "head.safetensors"))
    missing_keys, unexpected = policy.load_state_dict(state, strict=False)
    missing_keys = [k for k in missing_keys if not k.startswith("backbone.") or "lora_" in k]
    if missing_keys or unexpected:
        raise CheckpointError(
            f"{path}/head.safetensors does not match the policy: missing {missing_keys}, "
            f"unexpected {unexpected}"
        )
    return policy.to(policy.backbone.device)


# head parts that head.kwargs switch on or off (or, for a layer count, resize): the kwargs, what of their
# value decides the parameters (`bool`: on / off; `int`: a count), the parts' name prefixes. When those differ
# from the checkpoint's, `init_from` starts these parts fresh and loads everything else.
OPTIONAL_HEAD_PARTS = (
    (("motion",), bool, ("head.motion.", "head.mlp.", "head.state_proj."), "the action decoder's parts"),
    (
        ("object_attrs", "attr_match"),
        bool,
        ("head.grounding.obj_probe.", "head.grounding.pointers.attr_q."),
        "the object probe / attribute matching",
    ),
    (("token_neck",), int, ("head.grounding.pointers.neck.",), "the token neck's layers (identity at init)"),
)


def init_policy_from(
    ckpt_dir: str | os.PathLike, cfg: PolicyConfig, stats: dict, device: str = "auto"
) -> SpatialVLAPolicy:
    """A new policy (config `cfg`, normalization `stats` of the dataset it will train on) whose weights start
    from a spatial-vla checkpoint: fine-tuning a trained policy on new data (a curriculum stage, another task
    mix). The backbone (architecture and weights) is the checkpoint's, its images resized to this run's
    `backbone.image_size` / `min_image_size` (the ViT's rotary 2D positions carry across sizes; 0 keeps the
    checkpoint's); the head is built from `cfg.head` and
    must match the checkpoint's parameter for parameter; the normalizers come from `stats`, not the
    checkpoint (usual practice when fine-tuning on a new dataset). Optimizer, schedule and step start fresh.
    Switching `head.kwargs.motion` keeps the perception (backbone, queries, grounding) and starts the action
    decoder fresh; switching `head.kwargs.object_attrs` on starts the object probe fresh, and adding a
    `head.kwargs.token_neck` starts the neck fresh (as the identity, so the policy acts as before).
    """
    path, where = Path(ckpt_dir), f"init_from={str(ckpt_dir)!r}"
    if policy_type(path) != DEFAULT_POLICY_TYPE:
        raise CheckpointError(f"{where} is a {policy_type(path)!r} checkpoint, not a spatial_vla one")
    src = load_spatial_vla(path, device=device)
    if src.cfg.head.name != cfg.head.name:
        raise CheckpointError(f"{where} has head {src.cfg.head.name!r}; this run asks for {cfg.head.name!r}")
    if src.cfg.lora.enabled or cfg.lora.enabled:
        raise CheckpointError(f"{where}: init_from does not combine with LoRA (policy.lora.enabled)")
    # the checkpoint's backbone (architecture and weights, by path); camera images at this run's size
    bb = src.cfg.backbone
    size = (cfg.backbone.image_size, cfg.backbone.min_image_size)
    if cfg.backbone.image_size and size != (bb.image_size, bb.min_image_size):
        set_image_limits(src.processor.hf, *size)
        bb = dataclasses.replace(bb, image_size=size[0], min_image_size=size[1])
        log.info(
            "%s: images resized to backbone.image_size=%d, min_image_size=%d (checkpoint: %d, %d)",
            where,
            *size,
            src.cfg.backbone.image_size,
            src.cfg.backbone.min_image_size,
        )
    cfg = dataclasses.replace(cfg, backbone=bb)
    policy = SpatialVLAPolicy(cfg, stats, backbone=(src.backbone, src.processor.hf))
    # the backbone module is shared with `src`; copy the rest except the normalizers
    skip = ("backbone.", *(f"{n}." for n, m in policy.named_modules() if isinstance(m, Normalizer)))
    own = {k: v for k, v in policy.state_dict().items() if not k.startswith(skip)}
    state = {k: v for k, v in src.state_dict().items() if not k.startswith(skip)}
    bad = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    for keys, setting, fresh, what in OPTIONAL_HEAD_PARTS:
        if any(setting(cfg.head.kwargs.get(k, 0)) != setting(src.cfg.head.kwargs.get(k, 0)) for k in keys):
            # switched on, off or resized: the rest carries over, these parts start fresh
            missing = [k for k in missing if not k.startswith(fresh)]
            unexpected = [k for k in unexpected if not k.startswith(fresh)]
            log.info(
                "%s: head.kwargs %s differ from the checkpoint's: %s start fresh", where, "/".join(keys), what
            )
    if bad or missing or unexpected:
        raise CheckpointError(
            f"{where} does not match this policy (head.kwargs, chunk_size, cameras or dataset features "
            f"differ): shape mismatches {bad[:5]}, missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    policy.load_state_dict(state, strict=False)
    return policy.to(policy.backbone.device)


def read_features(ckpt_dir: str | os.PathLike) -> dict:
    path = Path(ckpt_dir) / "features.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt_dir} is not a policy checkpoint: {path} does not exist")
    return json.loads(path.read_text())


def check_features(ckpt: dict, other: dict, other_name: str) -> None:
    """Fail with both sides named when a checkpoint's features don't match an env's or a dataset's."""
    problems = []
    missing_cams = [c for c in ckpt["cameras"] if c not in other["cameras"]]
    if missing_cams:
        problems.append(f"cameras {ckpt['cameras']} vs {other_name} cameras {other['cameras']}")
    for key in ("state_dim", "action_dim"):
        if ckpt[key] != other[key]:
            problems.append(f"{key} {ckpt[key]} vs {other_name} {key} {other[key]}")
    if problems:
        raise CheckpointError(f"checkpoint features do not match the {other_name}: " + "; ".join(problems))
