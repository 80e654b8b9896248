"""lerobot's config of the `svla` policy type: what `config.json` of an exported checkpoint holds.

The checkpoint's own files (`policy.yaml`, `stats.json`, `features.json`, `backbone/`, `head.safetensors`)
stay the source of truth for the model; this config carries what lerobot's tools read or may override:
- `cameras`, `chunk_size`: recorded from the checkpoint and checked against it on load (an edited value is an
  error, never a silently different policy);
- `n_action_steps`: actions executed before re-planning, applied on load (`--policy.n_action_steps=4`);
- `input_features` / `output_features`: each camera's image (`vla.processor.image_key`:
  `observation.images.<cam>`, VISUAL), `observation.state` (STATE), `action` (ACTION), from
  `features.json`. The image shape is nominal (3, S, S) with S the backbone's image size: the VLA's
  processor resizes any image size itself.
- `device` (lerobot's base field) picks where the checkpoint is loaded.

Kept free of torch-heavy imports: lerobot imports this module for every CLI run (plugin discovery); the model
lives in `modeling_svla` (lerobot's naming convention: `configuration_*` -> `modeling_*` / `processor_*`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import FeatureType, PreTrainedConfig
from lerobot.optim.optimizers import AdamWConfig

POLICY_TYPE = "svla"


@PreTrainedConfig.register_subclass(POLICY_TYPE)
@dataclass
class SvlaConfig(PreTrainedConfig):
    """cameras: camera names the policy reads, in order (checked against the checkpoint).
    chunk_size: actions predicted per call (checked against the checkpoint).
    n_action_steps: actions executed before re-planning (1..chunk_size); applied on load."""

    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    chunk_size: int = 8
    n_action_steps: int = 8
    push_to_hub: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk_size < 1:
            raise ValueError(f"svla: chunk_size={self.chunk_size} must be >= 1")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"svla: n_action_steps={self.n_action_steps} must be in 1..chunk_size={self.chunk_size} "
                "(set --policy.n_action_steps=<k>)"
            )
        if not self.cameras:
            raise ValueError("svla: cameras is empty; the policy reads at least one camera")

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=1e-4, weight_decay=1e-4)

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        """Every camera has its image input (`vla.processor.image_key`); state and action features exist."""
        from vla.processor import image_key

        visual = {k for k, ft in (self.input_features or {}).items() if ft.type is FeatureType.VISUAL}
        missing = [image_key(c) for c in self.cameras if image_key(c) not in visual]
        if missing:
            raise ValueError(
                f"svla: no VISUAL input features {missing} for cameras {self.cameras} "
                f"(inputs: {sorted(visual)})"
            )
        if self.robot_state_feature is None:
            raise ValueError("svla: input_features lack observation.state (type STATE)")
        if self.action_feature is None:
            raise ValueError("svla: output_features lack action (type ACTION)")
