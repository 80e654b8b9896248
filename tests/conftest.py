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
