"""`svla-export-lerobot checkpoint=<svla-train checkpoint> output=<dir>`: a directory lerobot's tools load.

The output holds the checkpoint's own files (`backbone/`, `head.safetensors`, `policy.yaml`, `stats.json`,
`features.json`, `dataset.json` if any; not `training_state.pt`) plus lerobot's files: `config.json` (type
`svla`, `SvlaConfig` built from `policy.yaml` + `features.json`) and the processor pipelines
(`policy_preprocessor.json`, `policy_postprocessor.json`). So `lerobot-eval --policy.path=<dir>` and our own
`load_policy(<dir>)` / `svla-eval checkpoint=<dir>` load the same weights. Nothing is converted: the weights
are the checkpoint's files, copied (or hard-linked with `link=true`, which saves the disk of a 3B backbone;
our writers never modify a file in place, but do not edit either copy in place).
The output is written atomically (`envs.atomic.atomic_dir`): a crash never leaves a half export.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from envs.atomic import atomic_dir
from envs.hydra_utils import hydra_app, to_config
from vla.checkpoint import (
    DEFAULT_POLICY_TYPE,
    POLICY_TYPE_FILE,
    REQUIRED,
    CheckpointError,
    policy_type,
    read_features,
)
from vla.config import PolicyConfig
from vla.processor import ACTION_KEY, STATE_KEY, image_key

from .configuration_svla import SvlaConfig
from .processor_svla import make_svla_pre_post_processors

# files of a checkpoint that are not carried over (optimizer state) or are written fresh (lerobot's files)
SKIP = ("training_state.pt", "config.json", "policy_preprocessor.json", "policy_postprocessor.json")
NOMINAL_IMAGE_SIZE = 224  # image feature shape recorded when the backbone keeps its own size limits


@dataclass
class ExportConfig:
    """checkpoint: a spatial-vla checkpoint directory (svla-train `checkpoints/step_*`).
    output: the lerobot policy directory to write.
    device: default device in config.json (`auto`: cuda when available, else cpu); lerobot-eval's
        `--policy.device` overrides it.
    link: hard-link the weight files instead of copying them (same filesystem only; falls back to a copy).
    overwrite: replace an existing output directory."""

    checkpoint: str = ""
    output: str = ""
    device: str = "auto"
    link: bool = False
    overwrite: bool = False

    def __post_init__(self):
        if not self.checkpoint:
            raise ValueError("checkpoint is empty: pass checkpoint=<dir written by svla-train>")
        if not self.output:
            raise ValueError("output is empty: pass output=<directory to write the lerobot policy to>")


def check_checkpoint(ckpt: Path) -> None:
    """A spatial-vla checkpoint with all its files; another policy type or a missing file: CheckpointError."""
    if not ckpt.is_dir():
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is not a directory")
    kind = policy_type(ckpt)
    if kind != DEFAULT_POLICY_TYPE:
        hint = " (ACT checkpoints already are lerobot's layout: --policy.path=<it>)" if kind == "act" else ""
        raise CheckpointError(
            f"{ckpt} records policy type {kind!r} ({POLICY_TYPE_FILE}); svla-export-lerobot exports "
            f"{DEFAULT_POLICY_TYPE!r} checkpoints only{hint}"
        )
    missing = [f for f in REQUIRED if not (ckpt / f).exists()]
    if missing:
        raise CheckpointError(f"{ckpt} is not a complete spatial-vla checkpoint: missing {missing}")


def lerobot_config(ckpt: str | os.PathLike, device: str = "auto") -> SvlaConfig:
    """The `SvlaConfig` of a checkpoint: features from `features.json`, settings from `policy.yaml`."""
    ckpt = Path(ckpt)
    check_checkpoint(ckpt)
    from lerobot.configs import FeatureType, PolicyFeature

    cfg = to_config(OmegaConf.load(ckpt / "policy.yaml"), PolicyConfig)
    feats = read_features(ckpt)
    size = cfg.backbone.image_size or NOMINAL_IMAGE_SIZE
    inputs = {image_key(c): PolicyFeature(FeatureType.VISUAL, (3, size, size)) for c in feats["cameras"]}
    inputs[STATE_KEY] = PolicyFeature(FeatureType.STATE, (int(feats["state_dim"]),))
    outputs = {ACTION_KEY: PolicyFeature(FeatureType.ACTION, (int(feats["action_dim"]),))}
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SvlaConfig(
        input_features=inputs,
        output_features=outputs,
        device=device,
        cameras=list(feats["cameras"]),
        chunk_size=int(feats["chunk_size"]),
        n_action_steps=cfg.n_action_steps,
    )


def _transfer(src: Path, dst: Path, link: bool) -> None:
    if src.is_dir():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            _transfer(child, dst / child.name, link)
        return
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def export(cfg: ExportConfig) -> Path:
    """Write the lerobot policy directory of `cfg.checkpoint` to `cfg.output`; returns the output path."""
    ckpt, out = Path(cfg.checkpoint).resolve(), Path(cfg.output).resolve()
    config = lerobot_config(ckpt, cfg.device)
    if out == ckpt or ckpt in out.parents or out in ckpt.parents:
        raise CheckpointError(
            f"output {str(out)!r} must lie outside checkpoint {str(ckpt)!r} and not contain it"
        )
    if out.exists() and not cfg.overwrite:
        raise CheckpointError(f"output {str(out)!r} exists; pass overwrite=true to replace it")
    config.validate_features()
    preprocessor, postprocessor = make_svla_pre_post_processors(config)

    def write(tmp: Path) -> None:
        for item in sorted(ckpt.iterdir()):
            if item.name not in SKIP:
                _transfer(item, tmp / item.name, cfg.link)
        config._save_pretrained(tmp)  # config.json (with "type": "svla")
        preprocessor.save_pretrained(tmp)
        postprocessor.save_pretrained(tmp)

    return atomic_dir(out, write)


def run(cfg: ExportConfig) -> Path:
    out = export(cfg)
    print(f"lerobot policy (type svla): {out}\n  lerobot-eval --policy.path={out} --env.type=<env> ...")
    return out


main = hydra_app("export_lerobot", ExportConfig)(run)

if __name__ == "__main__":
    main()
