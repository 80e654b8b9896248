"""`svla-rl`: GRPO with verifiable spatial rewards, from a supervised backbone to a tuned one.

    svla-rl                                                   # outputs/sft/backbone -> outputs/rl/backbone
    svla-rl backbone.name_or_path=/work/runs/sft/backbone output_dir=/work/runs/rl
    svla-rl grpo.num_generations=8 grpo.beta=0.01 grpo.dapo_filter=false grpo.temperature=1.0
    svla-rl resume=true                                       # continue from <output_dir>/checkpoints/last
    svla-rl debug=rl_fast backbone.name_or_path=tiny_1m backbone.image_size=112   # tiny random backbone

The schema is `spatial_backbone.rl.config.RLConfig`; docs/rl.md describes rewards, decisions and numbers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from envs.hydra_utils import hydra_app
from spatial_backbone.rl.config import RLConfig


def run(cfg: RLConfig) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from spatial_backbone.rl.grpo import train_rl

    summary = train_rl(cfg)
    print(json.dumps(summary, indent=1))
    return summary


main = hydra_app("rl", RLConfig)(run)

if __name__ == "__main__":
    main()
