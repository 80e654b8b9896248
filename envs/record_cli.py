"""`svla-record`: scripted-expert demonstrations into a LeRobot v3 dataset (thin hydra entry; the library is
`envs.record`).

    svla-record env=pick_place episodes=100
    python -m envs.record_cli env=metaworld_reach episodes=2 num_envs=1 root=/tmp/mw overwrite=true
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco; inherited by the workers
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (else ~20 info lines per encoded video)
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # lerobot's per-episode "Map" bars

from envs.hydra_utils import hydra_app  # noqa: E402
from envs.record import RecordConfig, record  # noqa: E402


@hydra_app("record", RecordConfig)
def main(cfg: RecordConfig) -> None:
    """Record `cfg.episodes` successful expert episodes and print where they went."""
    summary = record(cfg)
    print(
        f"wrote {summary.episodes} episodes ({summary.frames} frames, {summary.attempts} attempts) of "
        f"{cfg.env.id} to {summary.root} (repo_id {summary.repo_id}) in {summary.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
