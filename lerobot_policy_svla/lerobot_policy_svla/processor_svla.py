"""lerobot's pre/post processor pipelines of the `svla` policy: plumbing only, no normalization.

The VLA's preprocessing (patchify, chat prompt with the task, state normalization) and the action
unnormalization are `vla.processor.VLAProcessor` + the policy's normalizers, inside `SvlaPolicy`: the one
function our training and `svla-eval` use. lerobot's pipelines therefore only do what lerobot's tools expect
of every policy's pipeline:
- preprocessor: `rename_observations_processor` (lerobot-eval passes a rename map), `to_batch_processor`
  (single robot observations get a batch dimension) and `device_processor` (lerobot-eval moves inputs to the
  policy's device through it);
- postprocessor: `device_processor` to the CPU (lerobot-eval turns actions into numpy).
`dataset_stats` are ignored: the statistics the policy normalizes with are its checkpoint's `stats.json`.
"""

from __future__ import annotations

from typing import Any

from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
)
from lerobot.processor.factory import make_policy_processor_pipelines

from .configuration_svla import SvlaConfig


def make_svla_pre_post_processors(
    config: SvlaConfig, dataset_stats: dict | None = None
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    return make_policy_processor_pipelines(
        input_steps=[
            RenameObservationsProcessorStep(rename_map={}),
            AddBatchDimensionProcessorStep(),
            DeviceProcessorStep(device=config.device),
        ],
        output_steps=[DeviceProcessorStep(device="cpu")],
    )
