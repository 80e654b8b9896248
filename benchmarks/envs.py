"""Env throughput: the Gymnasium env vs bare MuJoCo on the same model, and vector-env scaling.

Prints, in one run:
1. env step + render (all observation cameras) throughput over bare `mj_step` x substeps + `Renderer.render`
   of the same compiled model and cameras (target ratio >= 0.7: the env's Python overhead is small);
2. `AsyncVectorEnv` throughput with 2 workers over 1 worker (env steps per second, summed over workers).
   Resets are excluded from (1) and included in (2). Usage: `python benchmarks/envs.py [--task ID] [--steps
   N]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

os.environ.setdefault("MUJOCO_GL", "egl")
# As a script, this directory is first on sys.path, and `benchmarks/envs.py` would shadow the `envs` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402


def env_steps_per_s(task_id: str, steps: int, image_size: int) -> tuple[float, str, int, tuple[str, ...]]:
    """Steps/s of env.step (resets excluded); also the last scene's MJCF, substeps and cameras."""
    env = envs.make(task_id, image_size=image_size)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    elapsed = 0.0
    for _ in range(steps):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        if terminated or truncated:
            env.reset()
    u = env.unwrapped
    xml, substeps, cams = u.scene.xml, u.n_substeps, u.config.cameras
    env.close()
    return steps / elapsed, xml, substeps, cams


def bare_steps_per_s(xml: str, substeps: int, cameras: tuple[str, ...], steps: int, image_size: int) -> float:
    """The same work in plain MuJoCo: random controls, `substeps` mj_step, one render per camera."""
    model = mujoco.MjModel.from_xml_string(xml)
    model.vis.quality.shadowsize = 0
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, image_size, image_size)
    rng = np.random.default_rng(0)
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    mujoco.mj_forward(model, data)
    t0 = time.perf_counter()
    for _ in range(steps):
        data.ctrl[:] = rng.uniform(lo, hi)
        for _ in range(substeps):
            mujoco.mj_step(model, data)
        for cam in cameras:
            renderer.update_scene(data, camera=cam)
            renderer.render()
    elapsed = time.perf_counter() - t0
    renderer.close()
    return steps / elapsed


def vector_steps_per_s(task_id: str, num_envs: int, steps: int, image_size: int) -> float:
    venv = gym.vector.AsyncVectorEnv(
        [partial(envs.make, task_id, image_size=image_size)] * num_envs, context="spawn"
    )
    rng = np.random.default_rng(0)
    venv.reset(seed=list(range(num_envs)))
    venv.step(rng.uniform(-1, 1, (num_envs, 4)).astype(np.float32))  # warm up the workers
    t0 = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1, 1, (num_envs, 4)).astype(np.float32))
    elapsed = time.perf_counter() - t0
    venv.close()
    return num_envs * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="svla/PickPlace-v0", choices=envs.TASK_IDS)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()

    env_rate, xml, substeps, cams = env_steps_per_s(args.task, args.steps, args.image_size)
    bare_rate = bare_steps_per_s(xml, substeps, cams, args.steps, args.image_size)
    print(f"{args.task}, {args.image_size}x{args.image_size}, cameras {cams}, {substeps} substeps/step")
    print(f"  env step+render    {env_rate:8.1f} steps/s")
    print(f"  bare MuJoCo        {bare_rate:8.1f} steps/s")
    print(f"  ratio env / bare   {env_rate / bare_rate:8.2f}   (target >= 0.7)")
    one = vector_steps_per_s(args.task, 1, args.steps // 2, args.image_size)
    two = vector_steps_per_s(args.task, 2, args.steps // 2, args.image_size)
    print(f"  AsyncVectorEnv 1 worker  {one:8.1f} steps/s")
    print(f"  AsyncVectorEnv 2 workers {two:8.1f} steps/s")
    print(
        f"  ratio 2 / 1 workers      {two / one:8.2f}   (ideal 2.0 with 2 free cores; "
        f"{os.cpu_count()} cores here, shared)"
    )


if __name__ == "__main__":
    main()
