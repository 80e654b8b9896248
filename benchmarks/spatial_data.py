"""Spatial data generation speed against the bare render rate of the same scenes, measured in one run.

For the same N scenes (train split, default config) it times, in this one process:
  1. bare render, envs `Scene`: build the scene, render the main view's RGB, close (what any consumer pays);
  2. bare render, `DataScene` (shared GL context, image-sized offscreen buffer): the same;
  3. full generation: sample skills, render every view they need (RGB, depth, segmentation, second view,
     camera path), build answers and formats, encode and write the images. and prints items/s of (3) next to
     scenes/s of (1) and (2) and their ratios.

    MUJOCO_GL=egl .venv/bin/python benchmarks/spatial_data.py [--scenes 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
# Running `python benchmarks/x.py` puts benchmarks/ first on sys.path, where benchmarks/envs.py would shadow
# the
# `envs` package: import the project's packages, not sibling scripts.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from envs.scene import Scene  # noqa: E402
from spatial_backbone.data.config import SpatialDataConfig  # noqa: E402
from spatial_backbone.data.generate import sample_scene, scene_rng, scene_samples, write_scene  # noqa: E402
from spatial_backbone.data.render import DataScene  # noqa: E402
from spatial_backbone.data.skills import resolve_skills  # noqa: E402


def bare(cfg: SpatialDataConfig, n: int, scene_cls) -> float:
    """Seconds to build, render the main RGB of, and close n scenes."""
    specs = [sample_scene(cfg, "train", scene_rng(cfg.seed, "train", i))[0] for i in range(n)]
    t0 = time.perf_counter()
    for spec in specs:
        with scene_cls(spec) if scene_cls is DataScene else scene_cls(spec, with_robot=False) as scene:
            scene.render_rgb("front")
    return time.perf_counter() - t0


def full(cfg: SpatialDataConfig, n: int) -> tuple[float, int, int]:
    """(seconds, items, images written) of generating n scenes into a temporary directory."""
    skills = resolve_skills(cfg.skills)
    items = images = 0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i in range(n):
            samples = scene_samples(cfg, "train", i, skills)
            items += len(write_scene(samples, Path(tmp), "train", i, cfg.image_format))
        seconds = time.perf_counter() - t0
        images = len(list(Path(tmp, "images", "train").iterdir()))
    return seconds, items, images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=60)
    args = p.parse_args()
    cfg = SpatialDataConfig()
    bare(cfg, 2, DataScene)  # warm up: imports, the shared GL context
    t_scene = bare(cfg, args.scenes, Scene)
    t_data = bare(cfg, args.scenes, DataScene)
    t_full, items, images = full(cfg, args.scenes)
    n = args.scenes
    print(f"{n} scenes, {cfg.image_size} px, {cfg.questions_per_scene} questions/scene, one process")
    print(f"bare render, envs Scene    : {n / t_scene:7.1f} scenes/s ({t_scene / n * 1e3:6.1f} ms/scene)")
    print(f"bare render, DataScene     : {n / t_data:7.1f} scenes/s ({t_data / n * 1e3:6.1f} ms/scene)")
    print(
        f"full generation            : {items / t_full:7.1f} items/s  ({t_full / n * 1e3:6.1f} ms/scene, "
        f"{images / n:.1f} images written/scene)"
    )
    print(f"ratio items/s : bare Scene renders/s     = {(items / t_full) / (n / t_scene):.2f}")
    print(f"ratio items/s : bare DataScene renders/s = {(items / t_full) / (n / t_data):.2f}")
    print(
        f"scenes/s of full generation vs bare DataScene = {(n / t_full) / (n / t_data):.2f} "
        "(the rest is extra views, depth/segmentation, drawing and PNG writing)"
    )


if __name__ == "__main__":
    main()
