"""`svla-sft`: supervised spatial tuning of a backbone on a `svla-spatial-data` dataset, packed sequences.

    svla-sft                                          # tiny_1m on outputs/spatial_data -> outputs/sft
    svla-sft debug=sft_fast data.dir=/tmp/spatial_small  # a few steps
    svla-sft resume=true                              # continue after a crash or kill -9
    svla-sft backbone=pretrained backbone.name_or_path=/models/Qwen2.5-VL-3B-Instruct \\
        optim.lr_language=5e-5 optim.lr_vision=5e-6 optim.lr_merger=5e-5   # VST's rates at 3B scale

The schema is `spatial_backbone.sft.config.SFTConfig` (library: `spatial_backbone.sft.train.train`). The tuned
backbone lands in `<output_dir>/backbone`; load it with `backbone=pretrained backbone.name_or_path=<dir>`.
"""

from __future__ import annotations

import logging

from rich.console import Console

from envs.hydra_utils import hydra_app
from spatial_backbone.sft.config import SFTConfig
from spatial_backbone.sft.train import train


def run(cfg: SFTConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = train(cfg)
    Console().print(
        f"[bold]SFT[/] {summary['steps']} steps in {summary['seconds']:.0f} s: final loss "
        f"{summary['final_loss']:.3f}, {summary['tokens_per_s']:.0f} tokens/s, "
        f"padding {summary['padding']:.1%}"
        f"\ntuned backbone: {summary.get('backbone')} (backbone.name_or_path=<it>)"
    )
    return summary


main = hydra_app("sft", SFTConfig)(run)

if __name__ == "__main__":
    main()
