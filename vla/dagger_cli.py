"""`svla-dagger`: a trained policy drives, the scripted expert labels every state it reaches (DAgger); the
result is a LeRobot dataset to merge with the demonstrations (thin hydra entry; the library is `vla.dagger`).

    svla-dagger checkpoint=outputs/train/default/checkpoints/step_0004000 env=pick_place episodes=200
    svla-merge "inputs=[<demos>,<dagger>]" root=<aggregate> repo_id=local/aggregate   # then svla-train on it
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco; inherited by the workers
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from envs.hydra_utils import hydra_app  # noqa: E402
from vla.dagger import DaggerConfig, dagger  # noqa: E402


@hydra_app("dagger", DaggerConfig)
def main(cfg: DaggerConfig) -> None:
    """Record `cfg.episodes` policy-driven, expert-labelled episodes and print where they went."""
    s = dagger(cfg)
    d, rate = s.info["driver"], s.info["expert_success_rate"]
    print(
        f"wrote {s.episodes} episodes ({s.frames} frames; policy success {rate:.2f}; {d['expert_steps']} of "
        f"{d['steps']} steps executed the expert's action) of {cfg.env.id} to {s.root} (repo_id {s.repo_id}) "
        f"in {s.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
