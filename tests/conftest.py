"""Shared test setup: headless MuJoCo rendering (EGL), no network, a throwaway HF cache, one torch thread."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"
# lerobot writes a datasets cache under HF_HOME when imported: never the user's own cache
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="svla-test-hf-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _kill_at_first_checkpoint(cmd: list[str], out, cwd, env: dict | None = None) -> str:
    """Start a training CLI, kill -9 it once `<out>/checkpoints/last` appears; return the marker's text."""
    import signal
    import subprocess
    import time
    from pathlib import Path

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = Path(out) / "checkpoints" / "last"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), f"{cmd[:3]} never wrote a checkpoint"
    return marker.read_text().strip()


import pytest  # noqa: E402


@pytest.fixture
def kill_at_first_checkpoint():
    return _kill_at_first_checkpoint


def _run_two_processes(args: list[str], cwd, timeout: float = 600):
    """`accelerate launch` of `args` (a script or `-m module ...`) on two CPU processes, the way DESIGN.md
    section 6 says works (`--cpu` alone silently gives one): the finished `subprocess.CompletedProcess`."""
    import subprocess
    import sys

    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_two_processes():
    return _run_two_processes


def _descend(loss_fn, params, steps: int, lr: float) -> tuple[float, float]:
    """AdamW on `params` for `steps` steps of the scalar `loss_fn()`; returns (first, last) loss values."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr)
    first = last = None
    for _ in range(steps):
        loss = loss_fn()
        last = float(loss.detach())
        first = last if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, last


def _grounding_answers(dataset) -> list[tuple[dict, dict, tuple[float, float]]]:
    """(meta, referred scene object, answer point (u, v) or box centre) of every grounding_point /
    grounding_box item in the train, test and shifted splits of a generated spatial dataset."""
    import json

    from spatial_backbone.data.io import load_split

    parsed = lambda x: json.loads(x) if isinstance(x, str) else x  # noqa: E731
    out = []
    for split in ("train", "test", "shifted"):
        for it in load_split(dataset, split):
            if it["skill"] not in ("grounding_point", "grounding_box"):
                continue
            meta, gt = parsed(it["meta"]), parsed(it["gt"])
            (obj,) = [o for o in meta["scene_objects"] if o["label"] == meta["objects"][0]]
            box = gt["bbox"] if "bbox" in gt else gt["box"]
            out.append((meta, obj, gt.get("point") or ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)))
    return out


@pytest.fixture
def grounding_answers():
    return _grounding_answers


@pytest.fixture
def descend():
    """A loss-on-one-batch fitting loop for "this loss learns" tests: descend(loss_fn, params, steps, lr)."""
    return _descend


TINY_IMG = 64  # -> 56x56 after the Qwen resize rule: 4 visual tokens per camera, fast


@pytest.fixture(scope="session")
def tiny_lift_dataset(tmp_path_factory):
    """Three recorded Lift episodes at 64 px (read-only: shared by every test that trains on it)."""
    from envs.hydra_utils import compose
    from envs.record import RecordConfig, record

    root = tmp_path_factory.mktemp("ds") / "lift"
    overrides = ["env=lift", "episodes=3", "num_envs=1", f"root={root}", "repo_id=local/lift"]
    overrides += [f"env.image_size={TINY_IMG}", "progress=false"]
    record(compose("record", overrides, schema=RecordConfig))
    return root


def tiny_train_overrides(dataset, out, *extra) -> list[str]:
    """svla-train overrides for a few fast steps on `tiny_lift_dataset`."""
    return [
        f"dataset.root={dataset}",
        "dataset.repo_id=local/lift",
        f"output_dir={out}",
        "progress=false",
        "batch_size=4",
        "log_every=1",
        "optim.warmup_steps=2",
        "backbone.image_size=56",
        *extra,
    ]


@pytest.fixture(scope="module")
def small_spatial_dataset(tmp_path_factory):
    """A small generated spatial dataset (6 train scenes x 8 questions; read-only), one per test module."""
    from spatial_backbone.data.config import SpatialDataConfig
    from spatial_backbone.data.generate import generate

    cfg = SpatialDataConfig(
        out_dir=str(tmp_path_factory.mktemp("spatial") / "data"),
        scenes={"train": 6, "val": 2, "test": 2, "shifted": 2},
        questions_per_scene=8,
        num_workers=0,
    )
    generate(cfg, progress=False)
    return Path(cfg.out_dir)
