"""The MetaWorld MT10 / MT50 protocol: suites and difficulty buckets, hub-feature parity of a recorded suite
dataset (`observation.image`, 4-D state and action, 80 fps), per-bucket scoring, and a multi-task
`svla-eval` end to end on a tiny checkpoint."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from rich.console import Console  # noqa: E402

from envs import metaworld_env as mw  # noqa: E402
from envs import metaworld_suites as suites  # noqa: E402
from envs.hydra_utils import compose  # noqa: E402
from envs.record import RecordConfig, camera_of_key, image_key, load_recording_info, record  # noqa: E402
from vla.evaluate import EvalConfig, evaluate, summarize_suite  # noqa: E402
from vla.stats import wilson_interval  # noqa: E402

IMG = 64  # -> 56x56 after the Qwen resize rule: 4 visual tokens, fast
TWO_TASKS = "metaworld/reach-v3,push-v3"  # easy + hard bucket; experts finish in ~45 and ~60 steps
# The policy-facing features of the hub dataset lerobot/metaworld_mt50 (meta/info.json; v3.0 of the card):
# one camera image decoded as [3, H, W] (480 x 480 there), observation.state float32 [4], action float32 [4],
# fps 80, robot_type metaworld. Its other columns (next.reward, next.success, task_id and the privileged
# 39-D observation.environment_state) are not policy inputs here and are not recorded.
HUB_KEYS = {"observation.image", "observation.state", "action"}
LEROBOT_DEFAULT_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


def test_suites_and_buckets():
    mt10, mt50 = suites.suite_tasks("mt10"), suites.suite_tasks("metaworld/mt50")
    assert len(mt10) == len(set(mt10)) == 10 and set(mt10) < set(mt50) and len(set(mt50)) == 50
    assert set(mt50) == set(mw.env_names())
    buckets = suites.difficulty_to_tasks()
    assert list(buckets) == ["easy", "medium", "hard", "very_hard"]
    covered = [t for tasks in buckets.values() for t in tasks]
    assert sorted(covered) == sorted(mt50), "every MT50 task is in exactly one bucket"
    from lerobot.envs.metaworld import DIFFICULTY_TO_TASKS  # the lists lerobot / SmolVLA report in

    assert {b: list(t) for b, t in buckets.items()} == DIFFICULTY_TO_TASKS
    assert [suites.bucket_of(t) for t in ("reach-v3", "metaworld/peg-insert-side-v3", "push-v3")] == [
        "easy",
        "medium",
        "hard",
    ]
    assert suites.bucket_of("shelf-place-v3") == "very_hard"
    assert suites.suite_tasks("easy") == list(buckets["easy"])
    assert suites.suite_tasks("reach-v3,push-v3,reach-v3") == ["reach-v3", "push-v3"]
    assert suites.is_suite_id("metaworld/mt10") and not suites.is_suite_id("metaworld/reach-v3")
    with pytest.raises(ValueError, match="unknown MetaWorld suite 'mt11'"):
        suites.suite_tasks("mt11")
    with pytest.raises(ValueError, match="in no difficulty bucket"):
        suites.bucket_of("not-a-task-v3")


def test_image_key_maps_the_top_camera_to_observation_image_and_keeps_the_others():
    assert image_key("top") == "observation.image"
    assert image_key("image") == "observation.images.image"  # LIBERO's, as in lerobot's datasets
    assert (
        image_key("front") == "observation.images.front" and image_key("wrist") == "observation.images.wrist"
    )
    for cam in ("top", "image", "front", "wrist"):
        assert camera_of_key(image_key(cam)) == cam
    assert camera_of_key("observation.state") is None and camera_of_key("observation.images") is None


@pytest.mark.parametrize(
    "name, n", [("metaworld_mt10", 10), ("metaworld_mt50", 50), ("metaworld_mt50_hub", 50)]
)
def test_suite_configs_have_lerobot_metaworld_features_and_expand_to_tasks(name, n):
    cfg = compose("record", [f"env={name}"], schema=RecordConfig)
    env = cfg.env
    assert (env.image_size, env.cameras, env.max_episode_steps, cfg.fps) == (480, ["top"], 400, 80)
    tasks = env.task_configs()
    assert env.is_suite and len(tasks) == n
    assert [t.id for t in tasks] == [mw.PREFIX + t for t in suites.suite_tasks(env.id)]
    assert all(
        (t.image_size, t.cameras, t.max_episode_steps, t.kwargs)
        == (env.image_size, env.cameras, env.max_episode_steps, env.kwargs)
        for t in tasks
    )
    assert env.kwargs["shadows"] is (name == "metaworld_mt50_hub")
    with pytest.raises(ValueError, match="is a suite of"):
        env.make()


@pytest.fixture(scope="module")
def suite_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mw") / "two"
    cfg = compose(
        "record",
        [
            "env=metaworld_mt10",
            f"env.id='{TWO_TASKS}'",
            "episodes=1",
            "num_envs=1",
            f"root={root}",
            "repo_id=local/mw_two",
            f"env.image_size={IMG}",
            "progress=false",
            "video_codec=h264",
        ],
        schema=RecordConfig,
    )
    summary = record(cfg)
    return root, summary


def test_recorded_suite_has_exactly_the_hub_features(suite_dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, summary = suite_dataset
    ds = LeRobotDataset("local/mw_two", root=root)
    feats = ds.meta.features
    assert set(feats) - LEROBOT_DEFAULT_KEYS == HUB_KEYS
    assert feats["observation.image"]["shape"] == (IMG, IMG, 3)
    assert (feats["observation.state"]["dtype"], tuple(feats["observation.state"]["shape"])) == (
        "float32",
        (4,),
    )
    assert (feats["action"]["dtype"], tuple(feats["action"]["shape"])) == ("float32", (4,))
    assert ds.meta.fps == 80 and ds.meta.robot_type == "metaworld"
    item = ds[0]
    assert item["observation.image"].shape == (3, IMG, IMG)  # the hub's decoded layout, [3, 480, 480] there
    assert item["observation.state"].shape == (4,) and item["action"].shape == (4,)
    # one episode per task, each episode's task string is lerobot's description of that task
    descriptions = mw.task_descriptions()
    tasks = [
        ds[int(ds.meta.episodes["dataset_from_index"][e])]["task"] for e in range(ds.meta.total_episodes)
    ]
    assert tasks == [descriptions["reach-v3"], descriptions["push-v3"]]
    info = load_recording_info(root)
    assert list(info["per_task"]) == ["metaworld/reach-v3", "metaworld/push-v3"]
    assert all(p["episodes"] == 1 and p["expert_success_rate"] == 1.0 for p in info["per_task"].values())
    assert {a["task"] for a in info["attempts"]} == set(info["per_task"]) and summary.episodes == 2
    from vla.data import dataset_features

    assert dataset_features(ds, ["top"])["cameras"] == ["top"]


def _task(successes, episodes=10):
    return {"episodes": episodes, "successes": successes, "success_rate": successes / episodes}


def test_bucket_scores_pool_tasks_and_average_the_buckets():
    per_task = {
        "metaworld/reach-v3": _task(10),
        "metaworld/door-open-v3": _task(5),
        "metaworld/peg-insert-side-v3": _task(0),
        "metaworld/push-v3": _task(2),
    }
    s = summarize_suite(per_task, suites.bucket_of)
    assert set(s["buckets"]) == {"easy", "medium", "hard"}
    easy = s["buckets"]["easy"]
    assert easy["tasks"] == ["metaworld/reach-v3", "metaworld/door-open-v3"]
    assert (easy["successes"], easy["episodes"], easy["success_rate"]) == (15, 20, 0.75)
    assert easy["wilson95"] == pytest.approx(list(wilson_interval(15, 20)))
    assert s["average"] == pytest.approx((0.75 + 0.0 + 0.2) / 3)
    assert s["task_mean"] == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)
    assert (s["successes"], s["episodes"]) == (17, 40)
    # SmolVLA's MetaWorld row: bucket means 82.5 / 41.8 / 45.0 / 60.0 -> "Average" 57.3 (mean of the buckets)
    smolvla = {
        "metaworld/reach-v3": _task(825, 1000),
        "metaworld/basketball-v3": _task(418, 1000),
        "metaworld/assembly-v3": _task(450, 1000),
        "metaworld/shelf-place-v3": _task(600, 1000),
    }
    assert round(100 * summarize_suite(smolvla, suites.bucket_of)["average"], 1) == 57.3


def test_multitask_eval_end_to_end(suite_dataset, tmp_path):
    from vla.eval_cli import results_table
    from vla.train import train
    from vla.train_config import TrainConfig

    root, _ = suite_dataset
    run = train(
        compose(
            "train",
            [
                f"dataset.root={root}",
                "dataset.repo_id=local/mw_two",
                f"output_dir={tmp_path / 'tr'}",
                "progress=false",
                "batch_size=4",
                "steps=1",
                "save_every=1",
                "optim.warmup_steps=1",
                "backbone.image_size=56",
                "policy.cameras=[top]",
            ],
            schema=TrainConfig,
        )
    )
    out = tmp_path / "ev"
    cfg = compose(
        "eval",
        [
            f"checkpoint={run['checkpoint']}",
            "env=metaworld_mt10",
            f"env.id='{TWO_TASKS}'",
            f"env.image_size={IMG}",
            "env.max_episode_steps=4",
            "episodes=1",
            "num_envs=1",
            "videos=1",
            f"output_dir={out}",
            "progress=false",
        ],
        schema=EvalConfig,
    )
    r = evaluate(cfg)
    saved = json.loads((out / "results.json").read_text())
    assert saved["suite"] == TWO_TASKS and list(saved["tasks"]) == [
        "metaworld/reach-v3",
        "metaworld/push-v3",
    ]
    for t in saved["tasks"].values():
        assert t["episodes"] == 1 and t["records"][0]["seed"] == 100000 and t["records"][0]["length"] <= 4
    assert list(saved["buckets"]) == ["easy", "hard"]
    assert [b["episodes"] for b in saved["buckets"].values()] == [1, 1]
    rates = [saved["tasks"][t]["success_rate"] for t in ("metaworld/reach-v3", "metaworld/push-v3")]
    assert saved["average"] == pytest.approx(sum(rates) / 2)
    m = saved["manifest"]
    assert (
        m["tasks"] == list(saved["tasks"])
        and m["episodes_per_task"] == 1
        and m["dataset"] == str(root.resolve())
    )
    assert [Path(v).parent.name for v in r["videos"]] == ["reach-v3", "push-v3"]
    console = Console(record=True, width=150)
    console.print(results_table(saved, "t"))
    text = console.export_text()
    assert "bucket hard (1 tasks)" in text and "average of 2 buckets" in text and "push-v3" in text
    # the recording seeds are still held out per task
    with pytest.raises(ValueError, match="overlap the recording seeds"):
        evaluate(
            compose(
                "eval",
                [
                    f"checkpoint={run['checkpoint']}",
                    "env=metaworld_mt10",
                    f"env.id='{TWO_TASKS}'",
                    "seed=0",
                    "episodes=1",
                ],
                schema=EvalConfig,
            )
        )
