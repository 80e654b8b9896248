"""`svla-train`: hydra entry point over `conf/train.yaml`; the loop lives in `vla.train`."""

from __future__ import annotations

import logging

from envs.hydra_utils import hydra_app
from vla.train import train
from vla.train_config import TrainConfig


def run(cfg: TrainConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = train(cfg)
    print(
        f"done: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
        f"checkpoint {summary['checkpoint']}"
    )
    return summary


main = hydra_app("train", TrainConfig)(run)

if __name__ == "__main__":
    main()
