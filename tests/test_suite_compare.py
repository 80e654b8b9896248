"""benchmarks/suite_compare.py: pooling svla-eval runs and pairing episodes by (task, seed)."""

import importlib.util
import json
from pathlib import Path

import pytest

from vla.stats import paired_newcombe_interval

_spec = importlib.util.spec_from_file_location(
    "suite_compare", Path(__file__).resolve().parents[1] / "benchmarks" / "suite_compare.py"
)
suite_compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite_compare)


def _run(root: Path, task: str, outcomes: dict[int, bool]) -> str:
    (root / task).mkdir(parents=True)
    records = [{"seed": s, "success": ok, "length": 10} for s, ok in outcomes.items()]
    (root / task / "results.json").write_text(json.dumps({"records": records}))
    return str(root)


def test_runs_pool_over_roots_and_pair_by_seed(tmp_path):
    a1 = _run(tmp_path / "a1", "reach", {0: True, 1: False, 2: False})
    a2 = _run(tmp_path / "a2", "reach", {3: True, 9: True})  # seed 9: only the base ran it
    b1 = _run(tmp_path / "b1", "reach", {0: True, 1: True, 2: True, 3: False})
    rows = suite_compare.compare(
        suite_compare.load(f"{a1},{a2}", ["reach"]), suite_compare.load(b1, ["reach"])
    )
    r = rows["reach"]
    assert (r["n"], r["k_base"], r["k_new"], r["unpaired"]) == (4, 2, 3, 1)
    assert r["diff"] == pytest.approx(0.25)
    assert r["diff_ci"] == pytest.approx(paired_newcombe_interval([1, 1, 1, 0], [1, 0, 0, 1]))
    assert rows["all"]["mean_new"] == pytest.approx(0.75)


def test_a_seed_in_two_pooled_roots_or_a_missing_run_is_an_error(tmp_path):
    a1 = _run(tmp_path / "a1", "lift", {0: True})
    a2 = _run(tmp_path / "a2", "lift", {0: False})
    with pytest.raises(SystemExit, match="repeats seed 0"):
        suite_compare.load(f"{a1},{a2}", ["lift"])
    with pytest.raises(SystemExit, match="not found"):
        suite_compare.load(str(tmp_path / "nowhere"), ["lift"])
