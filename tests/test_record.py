"""`svla-record`: datasets written by the real recording code path load back with lerobot and match what was
rendered; bad input fails early with clear errors; a kill -9 never leaves a dataset at `root`."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# lerobot reads HF_HOME when imported: point it at a throwaway directory first, and never touch the network
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="svla-test-hf-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import pytest  # noqa: E402
from hydra.errors import MissingConfigException  # noqa: E402

from envs.hydra_utils import CONF_DIR, ConfigError, compose  # noqa: E402
from envs.record import (  # noqa: E402
    OBJECTS_KEY,
    PRIVILEGED_KEY,
    RECORDING_INFO,
    RecordConfig,
    RecordingError,
    load_recording_info,
    record,
)

REPO = Path(__file__).resolve().parents[1]
SVLA_ENVS = ["lift", "reach", "push", "pick_place", "stack"]
# Codec tolerance, mean |decoded - rendered| over a frame's uint8 pixels, AV1 (libsvtav1, crf 30: lerobot's
# defaults) at 64x64, measured on 2 episodes per task: per-camera averages 2.6-3.9 (all tasks); single frames
# up to 4.9 (front) and 9.3 (wrist, fast motion at 64 px). Thresholds keep ~1.5x headroom: average < 6, every
# frame < 15. A black, upside-down or wrong-camera frame is far off (checked below against the 180-degree
# rotated frame); an off-by-one frame is not detectable from pixels at 80 fps (neighbouring frames differ by
# ~1-4), so alignment is asserted exactly through the state and action columns.
MAX_MEAN_ABS_DIFF = 6.0
MAX_FRAME_ABS_DIFF = 15.0


def _cfg(env: str, root: Path, *overrides: str) -> RecordConfig:
    base = [f"env={env}", "episodes=2", "num_envs=1", f"root={root}", "env.image_size=64", "progress=false"]
    return compose("record", [*base, *overrides], schema=RecordConfig)


def _roundtrip(cfg: RecordConfig) -> list[float]:
    """Record with the library, reload with `LeRobotDataset`, compare; returns per-frame mean abs diffs."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rendered = {}
    summary = record(cfg, on_episode=lambda i, ep: rendered.__setitem__(i, ep))
    ds = LeRobotDataset(cfg.dataset_repo_id, root=cfg.dataset_root)
    info = load_recording_info(cfg.dataset_root)

    assert ds.num_episodes == cfg.episodes == len(rendered) == summary.episodes
    assert info["seeds"] == [rendered[i].seed for i in range(cfg.episodes)]
    assert info["episode_lengths"] == [len(rendered[i]) for i in range(cfg.episodes)]
    assert ds.fps == cfg.fps and len(ds) == summary.frames == sum(info["episode_lengths"])
    diffs, rotated, index = [], [], 0
    assert all(ep.success for ep in rendered.values())
    for e in range(cfg.episodes):
        ep = rendered[e]
        for t in range(len(ep)):
            item = ds[index]
            index += 1
            assert int(item["episode_index"]) == e and int(item["frame_index"]) == t
            assert item["task"] == ep.task and ep.task
            np.testing.assert_array_equal(item["observation.state"].numpy(), ep.states[t])
            np.testing.assert_array_equal(item["action"].numpy(), ep.actions[t])
            if ep.privileged:  # the simulator's ground truth of frame t, kept aligned with it
                np.testing.assert_array_equal(item[PRIVILEGED_KEY].numpy(), ep.privileged[t])
            if ep.objects:
                np.testing.assert_array_equal(item[OBJECTS_KEY].numpy(), ep.objects[t])
            for cam, frames in ep.images.items():
                decoded = item[f"observation.images.{cam}"].permute(1, 2, 0).numpy() * 255.0  # [H, W, 3]
                diffs.append(float(np.abs(decoded - frames[t]).mean()))
                rotated.append(float(np.abs(decoded - frames[t][::-1, ::-1]).mean()))
    assert np.mean(diffs) < MAX_MEAN_ABS_DIFF and max(diffs) < MAX_FRAME_ABS_DIFF, (
        f"decoded frames differ from the rendered ones: mean {np.mean(diffs):.2f}, max {max(diffs):.2f}"
    )
    assert np.mean(diffs) < 0.5 * np.mean(rotated), "decoded frames no closer to the rendered than to rotated"
    return diffs


def test_metaworld_dataset_roundtrip_two_workers(tmp_path):
    cfg = _cfg("metaworld_reach", tmp_path / "mw", "num_envs=2")
    diffs = _roundtrip(cfg)
    info = load_recording_info(cfg.dataset_root)
    assert info["seeds"] == [0, 1] and info["seed_range"][0] == 0
    assert {a["seed"] for a in info["attempts"]} == set(range(*info["seed_range"]))
    assert info["env"]["id"] == "metaworld/reach-v3" and info["fps"] == 80
    assert info["versions"]["lerobot"] and "commit" in info["git"]
    print(f"metaworld reach: frame mean abs diff: mean {np.mean(diffs):.2f}, max {max(diffs):.2f}")


@pytest.mark.parametrize("env", SVLA_ENVS)
def test_svla_task_dataset_roundtrip(env, tmp_path):
    if not (CONF_DIR / "env" / f"{env}.yaml").is_file():
        pytest.skip(f"conf/env/{env}.yaml does not exist yet")
    pytest.importorskip("envs.experts", reason="envs.experts (ExpertActionWrapper) does not exist yet")
    cfg = _cfg(env, tmp_path / env)
    diffs = _roundtrip(cfg)
    # privileged ground truth (auxiliary targets): frame 0 is the target/goal of the seed's fresh episode
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    first = LeRobotDataset(cfg.dataset_repo_id, root=cfg.dataset_root)[0][PRIVILEGED_KEY].numpy()
    live = cfg.env.make()
    try:
        _, info = live.reset(seed=load_recording_info(cfg.dataset_root)["seeds"][0])
    finally:
        live.close()
    np.testing.assert_allclose(first, info["privileged_state"], atol=1e-6)
    assert np.abs(first[:2]).max() > 0  # a real position, not a zero placeholder
    objects = LeRobotDataset(cfg.dataset_repo_id, root=cfg.dataset_root)[0][OBJECTS_KEY].numpy()
    np.testing.assert_allclose(objects, info["privileged_objects"], atol=1e-6)
    print(f"{env}: frame mean abs diff: mean {np.mean(diffs):.2f}, max {max(diffs):.2f}")


def test_missing_env_lists_valid_options(tmp_path):
    with pytest.raises(MissingConfigException) as err:
        compose("record", ["env=not_a_task"], schema=RecordConfig)
    assert "metaworld_reach" in str(err.value)


def test_unknown_env_id_lists_registered_ids(tmp_path):
    with pytest.raises(ConfigError, match="metaworld/reach-v3"):
        compose("record", ["env=metaworld_reach", "env.id=metaworld/not-a-task-v3"], schema=RecordConfig)


def test_bad_values_are_quoted():
    with pytest.raises(ConfigError, match="episodes must be >= 1, got 0"):
        compose("record", ["env=metaworld_reach", "episodes=0"], schema=RecordConfig)
    with pytest.raises(ConfigError, match="control_hz must be 80, got 10"):
        compose("record", ["env=metaworld_reach", "env.control_hz=10"], schema=RecordConfig)


def test_existing_root_without_overwrite_errors(tmp_path):
    root = tmp_path / "taken"
    root.mkdir()
    (root / "something.txt").write_text("an earlier dataset")  # an empty directory would be fine to fill
    with pytest.raises(ConfigError, match=r"already exists; pass overwrite=true"):
        record(_cfg("metaworld_reach", root))


def test_failing_expert_hits_the_attempt_cap_and_leaves_nothing(tmp_path):
    root = tmp_path / "fails"
    cfg = _cfg("metaworld_reach", root, "episodes=1", "max_attempts=2", "env.max_episode_steps=3")
    with pytest.raises(RecordingError, match="succeeded in 0 of 2 episodes"):
        record(cfg)
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_keep_truncated_writes_the_expert_prefix_of_every_scene(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cut = _cfg("reach", tmp_path / "cut", "keep_truncated=true", "env.max_episode_steps=3")
    full = _cfg("reach", tmp_path / "full")
    record(cut), record(full)
    info, full_info = load_recording_info(cut.dataset_root), load_recording_info(full.dataset_root)
    assert info["seeds"] == full_info["seeds"] == [0, 1] and info["episode_lengths"] == [3, 3]
    assert [a["outcome"] for a in info["attempts"] if a["seed"] in info["seeds"]] == ["truncated"] * 2
    assert info["expert_success_rate"] == 0.0  # prefixes are kept, not counted as expert successes
    a, b = (
        LeRobotDataset(cut.dataset_repo_id, root=cut.dataset_root),
        LeRobotDataset(full.dataset_repo_id, root=full.dataset_root),
    )
    starts = [0, full_info["episode_lengths"][0]]
    for e in range(2):
        for t in range(3):  # the same frames as the first three of the full expert episode
            x, y = a[3 * e + t], b[starts[e] + t]
            assert x["task"] == y["task"]
            for key in ("observation.state", "action", PRIVILEGED_KEY):
                np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())


def _staging(root: Path) -> list[Path]:
    return sorted(root.parent.glob(f".{root.name}.staging-*"))


def test_kill_9_leaves_no_dataset_and_a_rerun_succeeds(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "envs.record_cli",
        "env=metaworld_reach",
        "num_envs=1",
        f"root={root}",
        "env.image_size=64",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen([*cmd, "episodes=200"], cwd=REPO, **quiet)
    try:
        # wait until episodes are being written: an open parquet file in the staging directory is the state
        # that would load as valid-but-corrupt if it were published
        deadline = time.monotonic() + 180
        while not any(p.rglob("*.parquet") for p in _staging(root) if (p / "data").exists()):
            assert proc.poll() is None, "svla-record exited before it was killed"
            assert time.monotonic() < deadline, "svla-record wrote no episode within 180 s"
            time.sleep(0.2)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not root.exists()
    with pytest.raises(Exception):  # noqa: B017  (offline: any failure to find a dataset at root)
        LeRobotDataset("local/metaworld_reach-v3", root=root)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"orphaned workers still running: {alive}"
    assert _staging(root), "the killed run's staging directory should still be there"

    rerun = subprocess.run([*cmd, "episodes=2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (root / RECORDING_INFO).is_file() and not _staging(root)
    assert LeRobotDataset("local/metaworld_reach-v3", root=root).num_episodes == 2
