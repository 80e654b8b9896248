"""Dataset generation: sample scenes per split, draw skills, format answers, render and write in parallel.

Design:
- Splits are deterministic by scene seed: scene i of split s is built from `np.random.default_rng([seed,
  SPLITS.index(s), i])`, so every split is reproducible on its own and independent of the worker count.
- The `shifted` split tests generalisation: its scenes contain at least one held-out color-shape pair
  (`heldout_pairs`) and every camera pose (main view, extra views, camera paths) comes from the held-out
  azimuth / elevation bands; train/val/test never see either.
- One scene yields `questions_per_scene` items from distinct skills drawn by weight (a weighted permutation;
  skills that do not fit the scene return nothing and the next is tried). Views are rendered lazily and shared
  by the items of a scene, and each image array is written once.
- Workers (spawned processes; EGL contexts are not fork-safe) render chunks of scenes and write images into
  the temporary dataset directory; the parent gathers records, sorts them by (scene, item) and writes one
  JSONL
  per split plus `manifest.json`, then renames the directory into place (atomic: a crash leaves no
  half-written dataset). Rendering cost is dominated by the per-scene renderer (GL context) creation, so
  several questions per scene are what makes 20k items cheap.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from envs.atomic import atomic_dir
from envs.scene import SHAPES, SIZES, SceneSpec, object_spec, place_objects
from spatial_backbone.data.config import SPLITS, SpatialDataConfig
from spatial_backbone.data.context import Pose, SceneContext, sample_pose
from spatial_backbone.data.formats import apply_format, choose_format
from spatial_backbone.data.io import FORMAT_VERSION, write_jsonl
from spatial_backbone.data.render import DataScene
from spatial_backbone.data.sample import Sample
from spatial_backbone.data.skills import SkillDef, resolve_skills

log = logging.getLogger(__name__)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _pairs(cfg: SpatialDataConfig) -> list[tuple[str, str]]:
    return [(c, s) for c in cfg.colors for s in cfg.shapes]


def sample_scene(
    cfg: SpatialDataConfig, split: str, rng: np.random.Generator
) -> tuple[SceneSpec, Pose, tuple]:
    """(spec, main camera pose, absent in-split (color, shape) pairs) of a random scene of `split`."""
    shifted = split == "shifted"
    held = set(cfg.heldout_pairs)
    allowed = [p for p in _pairs(cfg) if f"{p[0]}_{p[1]}" not in held or shifted]
    n = int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))
    kinds: list[tuple[str, str]] = []
    if shifted:
        kinds.append(tuple(cfg.heldout_pairs[int(rng.integers(len(cfg.heldout_pairs)))].split("_")))
    while len(kinds) < n:
        c, s = allowed[int(rng.integers(len(allowed)))]
        n_recept = sum(not SHAPES[k[1]].movable for k in kinds)
        if (c, s) in kinds or (not SHAPES[s].movable and n_recept >= 1):
            continue
        kinds.append((c, s))
    objs = [object_spec(s, c, str(rng.choice(list(SIZES)))) for c, s in kinds]
    pose = sample_pose(rng, cfg.camera, shifted)
    spec = SceneSpec(
        objects=place_objects(rng, objs),
        image_size=cfg.image_size,
        front_eye=pose.eye,
        front_target=pose.target,
        fovy=cfg.camera.fovy,
    )
    absent = tuple(p for p in allowed if p not in kinds)
    return spec, pose, absent


def skill_order(
    rng: np.random.Generator, skills: list[SkillDef], weights: dict[str, float]
) -> list[SkillDef]:
    """A weighted random permutation of `skills` (weight 0 drops a skill)."""
    w = np.array([weights.get(s.name, 1.0) for s in skills], float)
    keep = np.flatnonzero(w > 0)
    order = rng.choice(keep, size=len(keep), replace=False, p=w[keep] / w[keep].sum())
    return [skills[int(i)] for i in order]


def scene_samples(cfg: SpatialDataConfig, split: str, index: int, skills: list[SkillDef]) -> list[Sample]:
    """Every item of scene `index` of `split`: rendered, answered and formatted (images still in memory)."""
    rng = scene_rng(cfg.seed, split, index)
    spec, pose, absent = sample_scene(cfg, split, rng)
    out: list[Sample] = []
    with DataScene(spec) as scene:
        ctx = SceneContext(scene, cfg.camera, split == "shifted", absent, pose)
        for _ in range(3):  # passes, for skill subsets smaller than questions_per_scene
            for skill in skill_order(rng, skills, cfg.skill_weights):
                if len(out) >= cfg.questions_per_scene:
                    break
                for s in skill.fn(ctx, rng):
                    apply_format(
                        s,
                        choose_format(s, rng, cfg.formats.think, cfg.formats.spatialthinker),
                        cfg.formats.system_prompt,
                    )
                    out.append(s)
            if len(out) >= cfg.questions_per_scene:
                break
        objects = [
            {
                "label": ctx.label(o.index),
                "shape": o.shape,
                "color": o.color,
                "pos": [round(float(x), 4) for x in o.pos],
                "size": [round(float(2 * x), 4) for x in o.size],
                "yaw": round(o.yaw, 4),
            }
            for o in ctx.objects
        ]
    for s in out[: cfg.questions_per_scene]:
        s.meta.update(
            split=split, scene=index, scene_seed=[cfg.seed, SPLITS.index(split), index], scene_objects=objects
        )
    return out[: cfg.questions_per_scene]


def _save_image(img: np.ndarray, path: Path, fmt: str) -> None:
    im = Image.fromarray(img)
    if fmt == "png":
        im.save(path, format="PNG", compress_level=1)
    else:
        im.save(path, format="JPEG", quality=92)


def write_scene(samples: list[Sample], root: Path, split: str, index: int, fmt: str) -> list[dict[str, Any]]:
    """Write the scene's images once each (shared arrays are deduplicated) and return the items' records."""
    names: dict[int, str] = {}
    records = []
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    for j, s in enumerate(samples):
        paths = []
        for img in s.images:
            if id(img) not in names:
                names[id(img)] = f"images/{split}/{index:06d}_{len(names)}.{fmt}"
                _save_image(img, root / names[id(img)], fmt)
            paths.append(names[id(img)])
        records.append({"id": f"{split}-{index:06d}-{j:02d}"} | s.record(paths))
    return records


def _work(task: tuple[SpatialDataConfig, str, list[int], str]) -> tuple[str, list[dict[str, Any]]]:
    cfg, split, indices, root = task
    skills = resolve_skills(cfg.skills)
    records = []
    for i in indices:
        records += write_scene(scene_samples(cfg, split, i, skills), Path(root), split, i, cfg.image_format)
    return split, records


def _tasks(cfg: SpatialDataConfig, root: Path) -> list[tuple]:
    tasks = []
    for split in SPLITS:
        n = cfg.scenes.get(split, 0)
        for start in range(0, n, cfg.chunk_scenes):
            tasks.append((cfg, split, list(range(start, min(n, start + cfg.chunk_scenes))), str(root)))
    return tasks


def generate(cfg: SpatialDataConfig, progress: bool = True) -> Path:
    """Generate the dataset described by `cfg` into `cfg.out_dir` (atomically) and return its path."""
    resolve_skills(cfg.skills)  # fail fast on unknown names, before spawning workers
    out = Path(cfg.out_dir).resolve()
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=true to replace it, or choose another out_dir")
    t0 = time.perf_counter()
    stats: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        tasks = _tasks(cfg, tmp)
        by_split: dict[str, list[dict]] = {s: [] for s in SPLITS if cfg.scenes.get(s, 0) > 0}
        bar = tqdm(total=len(tasks), desc="scenes chunks", disable=not progress)
        if cfg.num_workers == 0:
            results = map(_work, tasks)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(cfg.num_workers)
            results = pool.imap_unordered(_work, tasks)
        try:
            for split, records in results:
                by_split[split] += records
                bar.update()
        finally:
            bar.close()
            if pool is not None:
                pool.close()
                pool.join()
        counts = {}
        for split, records in by_split.items():
            records.sort(key=lambda r: r["id"])
            write_jsonl(records, tmp / f"{split}.jsonl")
            counts[split] = {
                "items": len(records),
                "scenes": cfg.scenes[split],
                "skills": dict(sorted(Counter(r["skill"] for r in records).items())),
            }
        stats["counts"] = counts
        stats["seconds"] = seconds = time.perf_counter() - t0
        manifest = {
            "format_version": FORMAT_VERSION,
            "splits": counts,
            "seconds": round(seconds, 2),
            "config": asdict(cfg),
            "skills": {
                s.name: {"family": s.family, "answer_type": s.answer_type} for s in resolve_skills(cfg.skills)
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))

    atomic_dir(out, write)
    seconds, counts = stats["seconds"], stats["counts"]
    log.info("wrote %s in %.1f s: %s", out, seconds, {s: c["items"] for s, c in counts.items()})
    return out
