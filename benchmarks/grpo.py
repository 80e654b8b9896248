"""GRPO step time split between generation (rollouts + scoring) and update (log-prob forward, backward,
optimizer step), measured in one run of the real `svla-rl` trainer.

    python benchmarks/grpo.py                                   # tiny_1m random backbone, 12 steps
    python benchmarks/grpo.py --backbone /work/runs/rl_dev/warm_backbone --steps 20 --generations 8

How: TRL's `GRPOTrainer._generate_and_score_completions` (sampling G completions per prompt with
`model.generate`, the reference/old log-prob passes when needed, reward scoring) is timed by wrapping it; the
rest of each optimizer step (`training_step` minus that part: the policy's log-prob forward with gradients,
backward, clipping, AdamW) is the update. The first two steps are warm-up and not counted. Prints the
per-step milliseconds and the fractions.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

from transformers import TrainerCallback  # noqa: E402

from spatial_backbone.config import BackboneConfig  # noqa: E402
from spatial_backbone.rl.config import GRPOOptions, RLConfig, RLDataConfig  # noqa: E402
from spatial_backbone.rl.grpo import build_trainer  # noqa: E402

WARMUP = 2


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.t0, self.steps = 0.0, []

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.steps.append(time.perf_counter() - self.t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="tiny_1m", help="tiny preset or backbone directory")
    p.add_argument("--data-dir", default="outputs/spatial_data")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=16)
    p.add_argument("--beta", type=float, default=0.0)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = tempfile.mkdtemp(prefix="svla-grpo-bench-")
    cfg = RLConfig(
        backbone=BackboneConfig(
            name_or_path=a.backbone, image_size=112 if a.backbone.startswith("tiny") else 0
        ),
        data_dir=a.data_dir,
        data=RLDataConfig(max_items=512),
        grpo=GRPOOptions(
            num_generations=a.generations,
            prompts_per_step=a.prompts,
            max_completion_length=a.max_completion_length,
            beta=a.beta,
        ),
        max_steps=a.steps + WARMUP,
        save_steps=10**6,
        output_dir=str(Path(out) / "run"),
        progress=False,
    )
    trainer, _, _ = build_trainer(cfg)
    timer = StepTimer()
    trainer.add_callback(timer)
    gen_times: list[float] = []
    generate = trainer._generate_and_score_completions

    def timed(inputs):
        t = time.perf_counter()
        res = generate(inputs)
        gen_times.append(time.perf_counter() - t)
        return res

    trainer._generate_and_score_completions = timed
    trainer.train()
    steps, gens = timer.steps[WARMUP:], gen_times[WARMUP : len(timer.steps)]
    total, gen = sum(steps), sum(gens)
    n = len(steps)
    print(
        f"GRPO on {a.backbone}: {n} steps, {a.prompts} prompts x {a.generations} completions, "
        f"max_completion_length {a.max_completion_length}, beta {a.beta}"
    )
    print(f"step      {1000 * total / n:8.1f} ms")
    upd = total - gen
    print(f"generate  {1000 * gen / n:8.1f} ms  ({gen / total:.0%})  rollouts + rewards (+ ref log-probs)")
    print(f"update    {1000 * upd / n:8.1f} ms  ({upd / total:.0%})  log-prob forward + backward + AdamW")


if __name__ == "__main__":
    main()
