"""LeRobot's ACT behind our policy interface, and its checkpoints.

- The model is lerobot's own `ACTPolicy` (`lerobot.policies.act.modeling_act`) built from lerobot's
  `ACTConfig`, with `pretrained_backbone_weights=None` (nothing is downloaded: the ResNet starts from random
  weights). Normalization is lerobot's pre/post processors (`make_pre_post_processors`: mean/std of images,
  state and actions from the dataset statistics), so ACT sees exactly what lerobot's own training feeds it.
- Train/eval parity: `ActPolicy.model_inputs(raw)` is the ONE function from an observation to ACT's inputs.
  Dataset batches and live (vector) env observations first become a `RawObservation` through the very
  adapters `VLAProcessor` uses (`raw_from_dataset`, `raw_from_env`: images float [B, 3, H, W] in [0, 1]), so
  the two paths scale images identically. An image size other than the training one is an error, not a
  silent resize.
- Interface = our VLA's: `forward(batch) -> (loss, metrics)`, `predict_action_chunk(obs) -> [B, H, A]` in env
  units, `select_action(obs) -> [B, A]` (numpy, an action queue re-planning every `cfg.n_action_steps`),
  `reset()`, `cfg`. `svla-eval` loads it through `vla.checkpoint.load_policy`, which dispatches on the
  checkpoint's `policy_type.txt`.
- Checkpoint layout: `config.json` + `model.safetensors` (lerobot's `save_pretrained`), the two processor
  pipelines (`policy_preprocessor.json`, `policy_postprocessor.json` + their statistics as safetensors),
  `policy.yaml` (our `ActPolicyConfig`), `features.json` (cameras, dims, chunk, image shapes),
  `policy_type.txt` = `act`, and in training checkpoints `dataset.json` + `training_state.pt`. The directory
  is therefore also loadable by lerobot's own tools (`ACTPolicy.from_pretrained`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from envs.atomic import atomic_dir
from envs.hydra_utils import to_config, to_yaml
from spatial_backbone.device import apply_runtime, resolve_runtime
from vla.action_queue import ActionQueue
from vla.baselines.act_config import ActPolicyConfig
from vla.checkpoint import POLICY_TYPE_FILE, CheckpointError, read_features
from vla.data import DatasetError, dataset_features
from vla.normalize import select_stats
from vla.processor import ACTION_KEY, STATE_KEY, RawObservation, VLAProcessor, image_key

POLICY_TYPE = "act"
REQUIRED = ("config.json", "model.safetensors", "policy.yaml", "features.json", "policy_preprocessor.json")
PAD_KEY = "action_is_pad"


class _RawAdapters:
    """`VLAProcessor.raw_from_dataset` / `raw_from_env` read nothing but `self.cameras`: the same functions,
    without the VLA's tokenizer and patchifier."""

    raw_from_dataset = VLAProcessor.raw_from_dataset
    raw_from_env = VLAProcessor.raw_from_env

    def __init__(self, cameras: list[str]):
        self.cameras = list(cameras)


def act_features(dataset, cfg: ActPolicyConfig) -> dict:
    """What the policy is built for: `check_features`'s keys (cameras, state / action dims) + chunk size
    and each camera's image shape [3, H, W] (channel-first, from lerobot's `dataset_to_policy_features`)."""
    from lerobot.utils.feature_utils import dataset_to_policy_features

    feats = dataset_features(dataset, cfg.cameras)
    missing = [c for c in cfg.cameras if c not in feats["cameras"]]
    if missing:
        raise DatasetError(
            f"policy.cameras={cfg.cameras} but dataset {dataset.repo_id} has cameras {feats['cameras']}; "
            "set policy.cameras to a subset of them"
        )
    shapes = dataset_to_policy_features(dataset.meta.features)
    return feats | {
        "cameras": list(cfg.cameras),
        "chunk_size": cfg.chunk_size,
        "image_shapes": {c: list(shapes[image_key(c)].shape) for c in cfg.cameras},
    }


def build_act_config(cfg: ActPolicyConfig, feats: dict, device: str):
    """lerobot's `ACTConfig` for our features (the single place our options map onto lerobot's)."""
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig

    inputs = {
        image_key(c): PolicyFeature(FeatureType.VISUAL, tuple(feats["image_shapes"][c])) for c in cfg.cameras
    }
    inputs[STATE_KEY] = PolicyFeature(FeatureType.STATE, (int(feats["state_dim"]),))
    outputs = {ACTION_KEY: PolicyFeature(FeatureType.ACTION, (int(feats["action_dim"]),))}
    return ACTConfig(
        input_features=inputs,
        output_features=outputs,
        device=device,
        push_to_hub=False,
        chunk_size=cfg.chunk_size,
        n_action_steps=cfg.n_action_steps,
        vision_backbone=cfg.vision_backbone,
        pretrained_backbone_weights=None,
        dim_model=cfg.dim_model,
        n_heads=cfg.n_heads,
        dim_feedforward=cfg.dim_feedforward,
        n_encoder_layers=cfg.n_encoder_layers,
        n_decoder_layers=cfg.n_decoder_layers,
        use_vae=cfg.use_vae,
        latent_dim=cfg.latent_dim,
        n_vae_encoder_layers=cfg.n_vae_encoder_layers,
        kl_weight=cfg.kl_weight,
        dropout=cfg.dropout,
    )


class ActPolicy(ActionQueue, nn.Module):
    """lerobot `ACTPolicy` + its pre/post processors, with our observation adapters and action queue."""

    def __init__(self, cfg: ActPolicyConfig, model, processors: tuple, features: dict):
        super().__init__()
        self.cfg, self.model, self.features = cfg, model, features
        self.preprocessor, self.postprocessor = processors
        self._raw = _RawAdapters(cfg.cameras)
        self._init_queue()

    @classmethod
    def create(cls, cfg: ActPolicyConfig, features: dict, stats: dict, device: str) -> ActPolicy:
        """A freshly initialized policy; `stats`: dataset statistics (lists, as `select_stats` gives)."""
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors

        config = build_act_config(cfg, features, device)
        model = ACTPolicy(config).to(device)
        return cls(cfg, model, make_pre_post_processors(config, dataset_stats=stats), features)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- the one function -----------------------------------------------------------------------------------
    def model_inputs(self, raw: RawObservation) -> dict:
        """RawObservation -> ACT's normalized batch (lerobot keys, on the policy's device)."""
        batch = {}
        for c in self.cfg.cameras:
            img = raw.images[c]  # [B, 3, H, W] in [0, 1]
            want = tuple(self.features["image_shapes"][c])
            if tuple(img.shape[1:]) != want:
                raise ValueError(
                    f"camera {c!r} gives images {tuple(img.shape[1:])} but the ACT policy was trained on "
                    f"{want} (set env.image_size to the dataset's image size)"
                )
            batch[image_key(c)] = img.float()
        batch[STATE_KEY] = raw.state.float()  # [B, S]
        if raw.actions is not None:
            batch[ACTION_KEY] = raw.actions.float()  # [B, H, A]
            is_pad = raw.action_is_pad
            batch[PAD_KEY] = is_pad if is_pad is not None else torch.zeros(raw.actions.shape[:2], dtype=bool)
        return self.preprocessor(batch)

    # -- interface ------------------------------------------------------------------------------------------
    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = self.model_inputs(self._raw.raw_from_dataset(batch))
        if inputs.get(ACTION_KEY) is None:
            raise KeyError("training batch has no 'action' chunk (load the dataset with delta_timestamps)")
        if inputs[ACTION_KEY].shape[1] != self.cfg.chunk_size:
            raise ValueError(
                f"batch action chunk has {inputs[ACTION_KEY].shape[1]} steps, policy "
                f"chunk_size={self.cfg.chunk_size}"
            )
        loss, parts = self.model(inputs)
        metrics = {"l1": parts["l1_loss"], "loss": float(loss.detach())}
        if "kld_loss" in parts:
            metrics["kld"] = parts["kld_loss"]
        return loss, metrics

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict) -> torch.Tensor:
        """obs: env observation (single or batched) -> actions [B, H, A] in env units (on the CPU)."""
        inputs = self.model_inputs(self._raw.raw_from_env(obs))
        chunk = self.model.predict_action_chunk(inputs)  # [B, H, A] normalized
        return self.postprocessor(chunk)  # [B, H, A] unnormalized


# -- checkpoints ---------------------------------------------------------------------------------------------
def save_act_policy(
    policy: ActPolicy,
    out_dir: str | os.PathLike,
    training_state: dict | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write an ACT checkpoint atomically (layout in the module docstring)."""

    def write(tmp: Path):
        policy.model.save_pretrained(tmp)
        policy.preprocessor.save_pretrained(tmp)
        policy.postprocessor.save_pretrained(tmp)
        (tmp / "policy.yaml").write_text(to_yaml(policy.cfg))
        (tmp / "features.json").write_text(json.dumps(policy.features, indent=1))
        (tmp / POLICY_TYPE_FILE).write_text(POLICY_TYPE)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if training_state is not None:
            torch.save(training_state, tmp / "training_state.pt")

    return atomic_dir(Path(out_dir), write)


def load_act_policy(ckpt_dir: str | os.PathLike, device: str = "auto") -> ActPolicy:
    """The policy a checkpoint holds, through lerobot's loaders (strict weights, processors + statistics)."""
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    path = Path(ckpt_dir)
    missing = [f for f in REQUIRED if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"{path} is not an ACT policy checkpoint: missing {missing}")
    rt = resolve_runtime(device, "float32", "auto", 0)
    apply_runtime(rt)
    cfg = to_config(OmegaConf.load(path / "policy.yaml"), ActPolicyConfig)
    feats = read_features(path)
    config = build_act_config(cfg, feats, rt.device.type)
    model = ACTPolicy.from_pretrained(path, config=config, strict=True)
    on_device = {"device_processor": {"device": rt.device.type}}
    processors = make_pre_post_processors(config, pretrained_path=str(path), preprocessor_overrides=on_device)
    return ActPolicy(cfg, model, processors, feats)


def dataset_stats(dataset, cfg: ActPolicyConfig) -> dict:
    """The statistics ACT normalizes with: state, action and each used camera (JSON-able lists)."""
    return select_stats(dataset.meta.stats, (STATE_KEY, ACTION_KEY, *(image_key(c) for c in cfg.cameras)))
