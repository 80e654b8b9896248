"""svla-pipeline at debug size (`debug=pipeline_fast`): the whole path runs within its time budget; the report
holds rows for every skill, task and policy with numbers in range and the difference line; a rerun skips every
stage; `force=` reruns exactly that stage and its consumers; a run killed with kill -9 during training resumes
from its checkpoint and reports the very numbers of an uninterrupted run. Also: the difference intervals of
`vla.stats` against published values, and config errors."""

import json
import re
import sys
import time
from pathlib import Path

import pytest

from envs.hydra_utils import ConfigError, compose
from pipeline.cache import config_text, stage_key
from pipeline.config import PipelineConfig
from pipeline.graph import GRAPH, STAGES, downstream
from pipeline.report import POLICY_LABELS
from pipeline.runner import run_pipeline
from vla.stats import newcombe_interval, paired_newcombe_interval

REPO = Path(__file__).resolve().parents[1]
FAST_BUDGET_S = 180  # the limit for `svla-pipeline debug=pipeline_fast`
RATE = re.compile(r"(\d+\.\d)% \[(\d+\.\d), (\d+\.\d)\]")
HEADLINE = re.compile(
    r"Tuned minus untuned success: ([+-]\d+\.\d) points, 95% CI \[([+-]\d+\.\d), ([+-]\d+\.\d)\]"
)


def fast_config(run_dir: Path, *overrides: str) -> PipelineConfig:
    return compose(
        "pipeline", ["debug=pipeline_fast", f"run_dir={run_dir}", *overrides], schema=PipelineConfig
    )


def statuses(outcomes) -> dict[str, str]:
    return {o.name: o.status for o in outcomes}


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipeline") / "a"
    t0 = time.perf_counter()
    records, outcomes = run_pipeline(fast_config(run_dir))
    return run_dir, records, outcomes, time.perf_counter() - t0


# -- the run and its report ----------------------------------------------------------------------------------
def test_fast_pipeline_runs_every_stage_within_budget(fast_run):
    run_dir, records, outcomes, seconds = fast_run
    assert statuses(outcomes) == dict.fromkeys(STAGES, "ran")
    assert seconds < FAST_BUDGET_S, f"debug=pipeline_fast took {seconds:.0f} s (budget {FAST_BUDGET_S} s)"
    for name in STAGES:
        rec = json.loads((run_dir / name / "stage.json").read_text())
        assert rec["status"] == "complete" and rec["seconds"] >= 0 and rec["seed"] == 0
        assert rec["git"]["commit"] and rec["versions"]["torch"] and rec["config"]
        assert "$RUN_DIR" in rec["config"] or name == "report", f"{name}: run dir not masked in its key"


def test_report_json_has_every_skill_task_and_policy_in_range(fast_run):
    run_dir, *_ = fast_run
    res = json.loads((run_dir / "report.json").read_text())["results"]
    tasks = fast_config(run_dir).tasks
    assert set(res["spatial"]) == {"test", "shifted"}
    for split, by_backbone in res["spatial"].items():
        assert set(by_backbone) == {"untuned", "sft", "rl"}, split
        for r in by_backbone.values():
            assert r["skills"] and 0 <= r["overall"] <= 1
            assert all(0 <= s["score"] <= 1 and s["n"] >= 1 for s in r["skills"].values())
    assert set(res["policies"]) == set(POLICY_LABELS)
    for rows in res["policies"].values():
        assert set(rows) == {*tasks, "all"}
        for r in rows.values():
            lo, hi = r["wilson95"]
            assert r["episodes"] >= 1 and 0 <= lo <= r["success_rate"] <= hi <= 1
    for key in ("tuned_minus_untuned", "tuned_minus_act"):
        d = res[key]
        assert set(d["tasks"]) == set(tasks) and "Newcombe" in d["method"]
        for r in [*d["tasks"].values(), d["all"]]:
            lo, hi = r["ci95"]
            assert -1 <= lo <= r["difference"] <= hi <= 1
    for p, t in res["training"].items():
        assert t["steps"] >= 1 and t["curve"] and t["final_loss"] > 0, p


def test_report_md_tables_have_rows_for_every_skill_task_and_policy(fast_run):
    run_dir, *_ = fast_run
    md = (run_dir / "report.md").read_text()
    report = json.loads((run_dir / "report.json").read_text())
    res = report["results"]
    tasks = [*res["tasks"], "all"]
    rows: dict[str, str] = {}  # first table row per label (the headline comes before the training table)
    for line in md.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split("|")[1].strip(), line)
    for label in POLICY_LABELS.values():  # headline: one row per policy, one parsable cell per task
        cells = RATE.findall(rows[label])
        assert len(cells) == len(tasks), rows[label]
        for rate, lo, hi in cells:
            assert 0 <= float(lo) <= float(rate) <= float(hi) <= 100
    skills = {s for split in res["spatial"].values() for bb in split.values() for s in bb["skills"]}
    for skill in skills:  # spatial and grounding tables: one row per skill, a number per backbone and split
        numbers = re.findall(r"\| (\d\.\d{3}|-) ", rows[skill])
        assert len(numbers) == 1 + 3 * 2, rows[skill]
        assert all(n == "-" or 0 <= float(n) <= 1 for n in numbers[1:])
    assert "**grounding mean**" in md or "*grounding mean*" in md
    m = HEADLINE.search(md)
    assert m, "no tuned-minus-untuned line"
    d, lo, hi = map(float, m.groups())
    assert -100 <= lo <= d <= hi <= 100 and "Newcombe" in md
    for name in report["timing"]:  # time per stage and manifest tables
        assert re.search(rf"^\| {name} \| \d+\.\d \|$", md, re.M), name
        assert f"[stage.json]({name}/stage.json)" in md
    for link in re.findall(r"\]\(([^)]+\.(?:png|mp4|json))\)", md):
        assert (run_dir / link).is_file(), link
    pngs = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", md)
    assert len(pngs) == 4 and all((run_dir / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    videos = re.findall(r"\]\(eval_\w+/\w+/videos/[^)]+\.mp4\)", md)
    assert len(videos) == len(POLICY_LABELS) * len(res["tasks"])


# -- caching, force, resume, determinism ---------------------------------------------------------------------
def test_rerun_skips_every_stage_and_a_missing_output_reruns_its_stage(fast_run):
    run_dir, *_ = fast_run
    t0 = time.perf_counter()
    _, outcomes = run_pipeline(fast_config(run_dir))
    assert statuses(outcomes) == dict.fromkeys(STAGES, "cached")
    assert time.perf_counter() - t0 < 20
    (run_dir / "report" / "success.png").unlink()
    _, outcomes = run_pipeline(fast_config(run_dir))
    assert [o.name for o in outcomes if o.status != "cached"] == ["report"]


def test_force_reruns_the_stage_and_its_downstream_only(fast_run):
    run_dir, *_ = fast_run
    _, outcomes = run_pipeline(fast_config(run_dir, "force=vla_untuned"))
    ran = {o.name for o in outcomes if o.status == "ran"}
    assert ran == {"vla_untuned", "eval_untuned", "report"} == downstream({"vla_untuned"})
    assert all(o.status == "cached" for o in outcomes if o.name not in ran)


def test_killed_run_resumes_and_reports_the_same_numbers(fast_run, tmp_path, kill_at_first_checkpoint):
    """Run B is killed with kill -9 once the tuned VLA wrote its first checkpoint, then rerun: finished stages
    are skipped, the VLA resumes from its checkpoint, and every reported number equals run A's (same seed)."""
    run_dir_a, *_ = fast_run
    run_dir_b = tmp_path / "b"
    cmd = [sys.executable, "-m", "pipeline.cli", "debug=pipeline_fast", f"run_dir={run_dir_b}"]
    killed_at = kill_at_first_checkpoint(cmd, run_dir_b / "vla_tuned", REPO)
    assert killed_at != "step_0000004", "the run finished training before it could be killed"
    assert json.loads((run_dir_b / "vla_tuned" / "stage.json").read_text())["status"] == "running"
    _, outcomes = run_pipeline(fast_config(run_dir_b))
    status = statuses(outcomes)
    before = STAGES[: STAGES.index("vla_tuned")]
    assert all(status[s] == "cached" for s in before) and status["vla_tuned"] == "resumed"
    log = (run_dir_b / "vla_tuned" / "train_history.jsonl").read_text()
    assert '"step": 1,' in log  # the history of the killed part is kept: it resumed, not restarted
    a = json.loads((run_dir_a / "report.json").read_text())["results"]
    b = json.loads((run_dir_b / "report.json").read_text())["results"]
    assert a["tuned_minus_untuned"] is not None
    assert a == b


# -- config, cache keys and statistics -----------------------------------------------------------------------
def test_managed_fields_and_unknown_stages_are_errors():
    with pytest.raises(ConfigError, match=r"sft.output_dir='/elsewhere' is set by the pipeline .*run_dir="):
        compose("pipeline", ["sft.output_dir=/elsewhere"], schema=PipelineConfig)
    with pytest.raises(ConfigError, match=r"vla.seed=3 is set by the pipeline .*seed="):
        compose("pipeline", ["vla.seed=3"], schema=PipelineConfig)
    with pytest.raises(ConfigError, match=r"force=\['sft', 'nope'\]: unknown stage\(s\) \['nope'\]"):
        compose("pipeline", ["force=[sft,nope]"], schema=PipelineConfig)
    assert compose("pipeline", ["force=[sft,rl]"], schema=PipelineConfig).force == ["sft", "rl"]
    assert compose("pipeline", ["force=all"], schema=PipelineConfig).force == list(STAGES)
    with pytest.raises(ConfigError, match="no conf/env/<name>.yaml for"):
        compose("pipeline", ["tasks=[lift,juggle]"], schema=PipelineConfig)


def test_graph_is_topological_and_keys_ignore_the_run_dir(tmp_path):
    seen: set[str] = set()
    for name, inputs in GRAPH.items():
        assert set(inputs) <= seen, name
        seen.add(name)
    from envs.hydra_utils import to_yaml
    from pipeline.spatial import configure_sft
    from pipeline.stage import Context

    cfgs = [fast_config(tmp_path / d) for d in ("x", "y")]
    sft = [configure_sft(Context(c, Path(c.run_dir))) for c in cfgs]
    assert to_yaml(sft[0]) != to_yaml(sft[1])  # the paths differ ...
    keys = [stage_key("sft", config_text(s, Path(c.run_dir)), {}) for s, c in zip(sft, cfgs, strict=True)]
    assert keys[0] == keys[1]  # ... the key does not


def test_difference_intervals_match_published_values():
    # Newcombe 1998 (Stat Med 17:873), method 10: 56/70 - 48/80 -> [0.0524, 0.3339]
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # Fagerland, Lydersen & Laake (2017), chapter 4 (R contingencytables): 7/34 - 1/34 -> [0.0189, 0.3404]
    assert newcombe_interval(7, 34, 1, 34) == pytest.approx((0.0189, 0.3404), abs=1e-4)
    # paired, same book chapter 8 (Cavo et al. 2012): 59 both, 6 first only, 16 second only, 80 neither
    first = [1] * 59 + [1] * 6 + [0] * 16 + [0] * 80
    second = [1] * 59 + [0] * 6 + [1] * 16 + [0] * 80
    assert paired_newcombe_interval(first, second) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    lo, hi = paired_newcombe_interval([False] * 20, [False] * 20)
    assert lo < 0 < hi and lo == pytest.approx(-hi)
    lo, hi = paired_newcombe_interval([True] * 20, [False] * 20)
    assert 0 < lo < hi == 1.0
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        paired_newcombe_interval([True], [True, False])
