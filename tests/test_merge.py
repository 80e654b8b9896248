"""svla-merge: per-task recordings become one multi-task LeRobot dataset that keeps every source's seeds."""

import json

import pytest

from envs.hydra_utils import ConfigError, compose
from envs.merge import MergeConfig, merge
from envs.record import RECORDING_INFO, RecordConfig, record


def test_merge_two_tasks(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    roots = []
    for env in ("lift", "reach"):
        root = tmp_path / env
        record(
            compose(
                "record",
                [
                    f"env={env}",
                    "episodes=2",
                    "num_envs=1",
                    f"root={root}",
                    f"repo_id=local/{env}",
                    "env.image_size=64",
                    "progress=false",
                ],
                schema=RecordConfig,
            )
        )
        roots.append(str(root))
    out = merge(
        compose("merge", [f"inputs=[{','.join(roots)}]", f"root={tmp_path / 'suite'}"], schema=MergeConfig)
    )
    ds = LeRobotDataset("local/suite", root=out)
    parts = [LeRobotDataset(f"local/{e}", root=tmp_path / e) for e in ("lift", "reach")]
    assert ds.num_episodes == 4 and len(ds) == sum(len(p) for p in parts)
    tasks = {ds[i]["task"] for i in range(len(ds))}
    assert tasks == {p[i]["task"] for p in parts for i in range(len(p))}
    info = json.loads((out / RECORDING_INFO).read_text())
    assert [s["root"] for s in info["sources"]] == [str((tmp_path / e).resolve()) for e in ("lift", "reach")]
    assert {a["seed"] for a in info["attempts"]} >= {0, 1}
    with pytest.raises(ConfigError, match="overwrite=true"):
        merge(compose("merge", [f"inputs=[{roots[0]}]", f"root={out}"], schema=MergeConfig))


def test_merge_rejects_a_path_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ConfigError, match="not LeRobot datasets"):
        merge(compose("merge", [f"inputs=[{tmp_path}]", f"root={tmp_path / 'out'}"], schema=MergeConfig))
