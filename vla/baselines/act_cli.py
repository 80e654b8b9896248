"""`svla-train-act`: hydra entry point over `conf/train_act.yaml`; training lives in `vla.baselines.act`."""

from __future__ import annotations

import logging

from envs.hydra_utils import hydra_app
from vla.baselines.act import train_act
from vla.baselines.act_config import ActTrainConfig


def run(cfg: ActTrainConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = train_act(cfg)
    print(
        f"done: {summary['steps']} steps in {summary['wall_time_s']:.0f} s, final loss "
        f"{summary['final_loss']:.4f}, checkpoint {summary['checkpoint']}"
    )
    return summary


main = hydra_app("train_act", ActTrainConfig)(run)

if __name__ == "__main__":
    main()
