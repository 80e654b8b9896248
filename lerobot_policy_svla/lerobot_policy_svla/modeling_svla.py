"""`SvlaPolicy`: our `SpatialVLAPolicy` behind lerobot's `PreTrainedPolicy` interface.

- Built only from a checkpoint: `SvlaPolicy.from_pretrained(<dir>)` (what `make_policy` calls for
  `--policy.path=<dir>`) loads the directory with our own loader (`vla.checkpoint.load_policy`), then checks
  `config.json` against the checkpoint (cameras, chunk size, state / action dims) and applies
  `config.n_action_steps`. The directory is the layout `svla-export-lerobot` writes: our checkpoint files +
  `config.json` + lerobot's processor files, so `model.safetensors` is not used. Training from scratch through
  lerobot (`make_policy` without a path) is refused: use `svla-train`.
- One preprocessing function: lerobot batches (`observation.images.<cam>` float [B, 3, H, W] in [0, 1],
  `observation.state` [B, S], `task` list of B strings) go through `VLAProcessor.raw_from_dataset` and the
  same `SpatialVLAPolicy.predict_chunk_from_raw` that env observations take in `svla-eval`. Actions come out
  unnormalized (env units); lerobot's processors (`processor_svla`) do no normalization.
- The action queue is our `ActionQueue` (predict a chunk, execute its first `n_action_steps`), so lerobot's
  `select_action` and ours step through identical actions; lerobot gets them as a torch tensor [B, A].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from lerobot.policies.pretrained import PreTrainedPolicy

from vla.action_queue import ActionQueue
from vla.checkpoint import CheckpointError, load_policy, policy_features
from vla.policy import SpatialVLAPolicy

from .configuration_svla import POLICY_TYPE, SvlaConfig


def _local_dir(name_or_path: str | os.PathLike, revision: str | None) -> Path:
    """A local directory, or a Hub repo id downloaded (snapshot) into the HF cache."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=str(name_or_path), revision=revision))


def check_config(config: SvlaConfig, feats: dict, where: str) -> None:
    """`config.json` must describe the checkpoint it sits beside: a mismatch names both values."""
    problems = []
    if list(config.cameras) != list(feats["cameras"]):
        problems.append(f"cameras {list(config.cameras)} vs checkpoint {feats['cameras']}")
    if config.chunk_size != feats["chunk_size"]:
        problems.append(f"chunk_size {config.chunk_size} vs checkpoint {feats['chunk_size']}")
    state, action = config.robot_state_feature, config.action_feature
    if state is not None and tuple(state.shape) != (feats["state_dim"],):
        problems.append(f"observation.state shape {tuple(state.shape)} vs checkpoint ({feats['state_dim']},)")
    if action is not None and tuple(action.shape) != (feats["action_dim"],):
        problems.append(f"action shape {tuple(action.shape)} vs checkpoint ({feats['action_dim']},)")
    if problems:
        raise CheckpointError(f"svla config does not match the checkpoint {where}: " + "; ".join(problems))


class SvlaPolicy(ActionQueue, PreTrainedPolicy):
    config_class = SvlaConfig
    name = POLICY_TYPE

    def __init__(self, config: SvlaConfig, vla: SpatialVLAPolicy | None = None, **kwargs):
        super().__init__(config)
        if vla is None:
            raise ValueError(
                "svla policies are built from a checkpoint: pass --policy.path=<dir written by "
                "svla-export-lerobot> (SvlaPolicy.from_pretrained); train new policies with svla-train"
            )
        self.vla = vla
        self.vla.cfg.n_action_steps = config.n_action_steps
        self._init_queue()

    @property
    def cfg(self):  # what ActionQueue reads (n_action_steps)
        return self.vla.cfg

    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | os.PathLike,
        *,
        config: SvlaConfig | None = None,
        revision: str | None = None,
        **kwargs,
    ) -> SvlaPolicy:
        path = _local_dir(pretrained_name_or_path, revision)
        if config is None:
            if not (path / "config.json").is_file():
                raise CheckpointError(
                    f"{path} has no config.json: export it first with "
                    f"svla-export-lerobot checkpoint={path} output=<dir>"
                )
            config = SvlaConfig.from_pretrained(path)
        if not isinstance(config, SvlaConfig):
            raise CheckpointError(f"{path}: config type {config.type!r} is not {POLICY_TYPE!r}")
        vla = load_policy(path, device=config.device or "auto")
        if not isinstance(vla, SpatialVLAPolicy):
            raise CheckpointError(f"{path} holds a {type(vla).__name__}, not a spatial-vla policy")
        check_config(config, policy_features(vla), str(path))
        policy = cls(config, vla=vla)
        policy.to(config.device)
        policy.eval()
        return policy

    def _save_pretrained(self, save_directory: Path, state_dict: dict | None = None) -> None:
        """lerobot's save (e.g. lerobot-train checkpoints): our checkpoint layout + config.json."""
        from vla.checkpoint import _write_policy

        _write_policy(self.vla, Path(save_directory))
        self.config._save_pretrained(Path(save_directory))

    def get_optim_params(self):
        return self.parameters()

    def reset(self) -> None:
        ActionQueue.reset(self)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """A LeRobot training batch (with `action` chunks) -> (loss, metrics), exactly `svla-train`'s step."""
        return self.vla(batch)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> torch.Tensor:
        """lerobot batch -> actions [B, H, A] in env units."""
        if "task" not in batch:
            raise KeyError(
                "svla needs the language instruction under 'task' (a list of B strings) in the batch; "
                f"got keys {sorted(batch)}"
            )
        processor = self.vla.processor
        return self.vla.predict_chunk_from_raw(processor.raw_from_dataset(batch))

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> torch.Tensor:
        """Next action [B, A] (float32 tensor, env units): the queue of `ActionQueue`."""
        action = ActionQueue.select_action(self, batch)  # numpy [B, A]
        return torch.from_numpy(np.ascontiguousarray(action))
