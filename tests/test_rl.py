"""svla-rl: config validation, the reward callable, the DAPO group filter, a real tiny GRPO run through TRL
(3D M-RoPE inputs, per-step reward components, a loadable backbone) and resume after kill -9 of the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envs.hydra_utils import ConfigError, compose
from spatial_backbone.config import BackboneConfig
from spatial_backbone.rl.config import GRPOOptions, RLConfig, RLDataConfig
from spatial_backbone.rl.grpo import SpatialReward, drop_uninformative_groups

ROOT = Path(__file__).resolve().parents[1]


# -- config
# -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"num_generations": 1}, "num_generations=1"),
        ({"temperature": 0.0}, "temperature=0.0"),
        ({"beta": -0.1}, "beta=-0.1"),
        ({"loss_type": "ppo"}, "'ppo'"),
        ({"loss_type": "grpo", "dapo_filter": True}, "loss_type='grpo'"),
        ({"anchor_coef": 1.0, "beta": 0.0}, "need the reference model"),
        ({"anchor_coef": -1.0}, "anchor_coef=-1.0"),
        ({"anchor_answers": "sampled"}, "'sampled'"),
        ({"anchor_margin_coef": -2.0}, "anchor_margin_coef=-2.0"),
        ({"anchor_margin_coef": 1.0, "beta": 0.0}, "need the reference model"),
    ],
)
def test_bad_grpo_values_are_quoted(kwargs, quoted):
    with pytest.raises(ValueError, match=quoted):
        GRPOOptions(**kwargs)


def test_bad_data_values_are_quoted():
    with pytest.raises(ValueError, match="spacy"):
        RLDataConfig(rewards=["spacy"])
    with pytest.raises(ValueError, match="'nope'"):
        RLDataConfig(split="nope")
    with pytest.raises(ConfigError, match="max_steps=0"):
        compose("rl", ["max_steps=0"], schema=RLConfig)
    with pytest.raises(ConfigError, match="every item trains"):
        compose("rl", ["grpo.anchor_coef=1", "data.skills=[]", "data.formats=[]"], schema=RLConfig)
    with pytest.raises(ConfigError, match="every item trains"):
        compose("rl", ["grpo.anchor_margin_coef=1", "data.skills=[]", "data.formats=[]"], schema=RLConfig)


def test_yaml_mirrors_the_dataclass_defaults():
    cfg = compose("rl", schema=RLConfig)
    assert cfg.grpo == GRPOOptions() and cfg.data == RLDataConfig()
    assert cfg.backbone.name_or_path == RLConfig().backbone.name_or_path
    fast = compose("rl", ["debug=rl_fast"], schema=RLConfig)
    assert fast.max_steps < cfg.max_steps


# -- reward callable and DAPO filter
# ---------------------------------------------------------------------------------
def test_spatial_reward_scores_each_item_by_its_family_and_logs_components():
    logged = {}
    columns = {
        "reward": ["vst", "ssrl", "spatialthinker"],
        "answer_type": ["word", "word", "scene_graph"],
        "format": ["plain", "boxed", "plain"],
        "gt": [
            json.dumps({"word": "yes", "vocab": ["yes", "no"]}),
            json.dumps({"word": "left", "vocab": ["left", "right"]}),
            json.dumps({"objects": [{"id": "red cube.1", "bbox": [1, 1, 9, 9]}], "relations": []}),
        ],
        "answer": ["yes", "<think>x</think> \\boxed{left}", "{}"],
        "skill": ["existence", "patch_flip", "scene_graph"],
    }
    completions = [[{"role": "assistant", "content": "yes"}], "\\boxed{left}", "garbage {"]
    fn = SpatialReward()
    rewards = fn(prompts=[None] * 3, completions=completions, log_metric=logged.__setitem__, **columns)
    assert rewards == pytest.approx([1.0, 0.9, 0.0])
    assert fn.last_accuracy == pytest.approx([1.0, 1.0, 0.0])
    assert {"vst/format", "vst/accuracy", "ssrl/format", "spatialthinker/spatial", "accuracy"} <= set(logged)


def test_dapo_filter_drops_groups_that_are_all_right_or_all_wrong():
    batch = {"completion_mask": torch.ones(6, 3, dtype=torch.long), "num_items_in_batch": torch.tensor(18)}
    kept = drop_uninformative_groups(
        batch, [1, 1, 0, 1, 0, 0], group=2
    )  # groups: all right, mixed, all wrong
    assert kept == pytest.approx(1 / 3)
    assert batch["completion_mask"].sum(1).tolist() == [0, 0, 3, 3, 0, 0]
    assert int(batch["num_items_in_batch"]) == 6


# -- real runs on a tiny dataset and backbone
# ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from spatial_backbone.data.config import SpatialDataConfig
    from spatial_backbone.data.generate import generate
    from spatial_backbone.factory import build_backbone, save_backbone

    root = tmp_path_factory.mktemp("rl")
    data = SpatialDataConfig(
        out_dir=str(root / "data"), scenes={"train": 6}, questions_per_scene=10, num_workers=0
    )
    generate(data, progress=False)
    model, processor = build_backbone(BackboneConfig(name_or_path="tiny_1m"))
    save_backbone(model, processor, root / "start")
    return root


def small_cfg(root: Path, out: str, skills=(), **kw) -> RLConfig:
    data = RLDataConfig(
        skills=list(skills), formats=[], answer_types=["word", "choice"], max_answer_tokens=64
    )
    grpo = GRPOOptions(num_generations=2, prompts_per_step=2, max_completion_length=6, **kw)
    return RLConfig(
        backbone=BackboneConfig(name_or_path=str(root / "start"), image_size=0),
        data_dir=str(root / "data"),
        data=data,
        grpo=grpo,
        max_steps=3,
        save_steps=2,
        output_dir=str(root / out),
        progress=False,
    )


def test_grpo_run_passes_3d_positions_logs_components_and_writes_a_backbone(setup):
    from spatial_backbone.factory import build_backbone
    from spatial_backbone.rl.grpo import build_trainer

    cfg = small_cfg(setup, "run", beta=0.01, dapo_filter=True)  # a KL reference model and the group filter
    trainer, processor, out = build_trainer(cfg)
    seen = []

    def spy(module, args, kwargs):
        mm = kwargs.get("mm_token_type_ids")
        seen.append((torch.is_grad_enabled(), None if mm is None else int((mm == 1).sum())))

    hook = trainer.model.register_forward_pre_hook(spy, with_kwargs=True)
    trainer.train()
    hook.remove()
    # the generation prefill (later decoding steps reuse its cached positions) and the policy's log-prob pass
    # with gradients both got mm_token_type_ids marking the image tokens: Qwen2.5-VL used 3D M-RoPE positions
    assert seen[0][1], seen[:3]
    assert any(grad and mm for grad, mm in seen), seen
    history = [json.loads(line) for line in open(out / "history.jsonl")]
    steps = [r for r in history if "reward" in r]
    assert len(steps) == 3
    assert {"vst/accuracy", "vst/format", "accuracy", "kl", "dapo/kept_groups"} <= set(steps[-1])
    assert (
        out / "checkpoints" / "last"
    ).read_text().strip() == "checkpoint-3"  # every 2 steps and at the end

    from spatial_backbone.rl.grpo import train_rl

    summary = train_rl(small_cfg(setup, "run2"))
    model, _ = build_backbone(BackboneConfig(name_or_path=summary["backbone"], image_size=0))
    assert summary["steps"] == 3 and model.config.model_type == "qwen2_5_vl"


def test_resume_after_kill_9(setup, kill_at_first_checkpoint):
    out = setup / "killed"
    args = [
        sys.executable,
        "-m",
        "spatial_backbone.rl.cli",
        f"backbone.name_or_path={setup / 'start'}",
        f"data_dir={setup / 'data'}",
        "data.skills=[]",
        "data.formats=[]",
        "data.answer_types=[word,choice]",
        "data.max_answer_tokens=64",
        "grpo.num_generations=2",
        "grpo.prompts_per_step=2",
        "grpo.max_completion_length=6",
        "max_steps=30",
        "save_steps=2",
        f"output_dir={out}",
        "progress=false",
        f"hydra.run.dir={setup / 'hydra'}",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed_at = int(kill_at_first_checkpoint(args, out, ROOT, env).split("-")[1])
    assert killed_at < 30
    res = subprocess.run(
        [*args, "resume=true"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["resumed_from"].endswith(f"checkpoint-{killed_at}")
    rows = [json.loads(line) for line in open(out / "history.jsonl")]
    assert [r["step"] for r in rows if "reward" in r] == list(range(1, 31))  # no step lost or repeated


def test_forced_margin_is_the_targets_lead_over_the_best_other_token():
    from spatial_backbone.rl.anchor import forced_margin

    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 5.0], [4.0, 4.0, -1.0]])  # [N, V]
    got = forced_margin(logits, torch.tensor([1, 0, 0]))  # [N]
    assert got.tolist() == [1.0, -5.0, 0.0]  # a lead, a deficit, a tie


def test_anchor_is_zero_at_the_reference_and_pulls_back_a_moved_policy(setup):
    import copy

    from spatial_backbone.data.io import load_split
    from spatial_backbone.factory import build_backbone
    from spatial_backbone.rl.anchor import AnchorItems, anchor_losses, forced_margin
    from spatial_backbone.sft.answers import answer_logits

    model, processor = build_backbone(BackboneConfig(name_or_path=str(setup / "start"), image_size=0))
    items = load_split(setup / "data", "train", decode=False)
    trained = ["depth_comparison", "counting"]
    # every format trained: the anchor holds exactly the other skills
    anchor = AnchorItems(processor, str(setup / "data"), "train", trained, 3, 10_000, 0, [])
    assert {it.skill for it in anchor.items} == {it["skill"] for it in items} - set(trained)
    # GRPO on plain answers only: the trained skills' other formats are held too (session 6: a boxed-only
    # skill was never anchored when the anchor copied GRPO's format list)
    plain = AnchorItems(processor, str(setup / "data"), "train", trained, 3, 10_000, 0, ["plain"])
    expect = [it for it in items if not (it["skill"] in trained and it["format"] == "plain")]
    assert len(plain.items) == len(expect) > len(anchor.items)
    # every skill trained (empty list, as in GRPO's filter) on plain answers: only the other formats are held
    others = AnchorItems(processor, str(setup / "data"), "train", [], 3, 10_000, 0, ["plain"])
    assert len(others.items) == sum(it["format"] != "plain" for it in items) > 0
    anchor = AnchorItems(processor, str(setup / "data"), "train", trained, 3, 64, 0, [])
    a, b = anchor.batch(5), anchor.batch(5)
    assert torch.equal(a["input_ids"], b["input_ids"])  # a pure function of (seed, step): resume-safe
    assert not torch.equal(a["input_ids"], anchor.batch(6)["input_ids"]) or len(anchor.items) <= 3
    ref = copy.deepcopy(model).eval()
    kl, drop = anchor_losses(model, ref, a)
    assert kl.item() == pytest.approx(0.0, abs=1e-6) and drop.item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        ref_logits, targets = answer_logits(ref, a)  # [N, V], [N]
        m_ref = forced_margin(ref_logits, targets)  # [N]
        model.lm_head.weight.mul_(2.0)  # (untied) every logit doubles, so every margin m becomes 2m
    kl, drop = anchor_losses(model, ref, a)
    assert kl.item() > 1e-4
    # leads grew and deficits shrank: the margin term counts only the deficits, by how much they fell (m)
    assert (m_ref > 0).any() and (m_ref < 0).any()
    assert drop.item() == pytest.approx(float((-m_ref).clamp(min=0).mean()), rel=1e-4)
    drop.backward(retain_graph=True)
    assert model.lm_head.weight.grad.abs().sum() > 0
    model.zero_grad()
    kl.backward()
    assert model.lm_head.weight.grad.abs().sum() > 0


def test_greedy_anchor_forces_the_start_models_own_completions(setup):
    """`anchor_answers=greedy` teacher-forces the start model's greedy path: at (nearly) every forced answer
    token the model's argmax is that token, while the dataset answers are not the untrained model's choice."""
    from spatial_backbone.factory import build_backbone
    from spatial_backbone.rl.anchor import AnchorItems
    from spatial_backbone.sft.answers import answer_logits

    model, processor = build_backbone(BackboneConfig(name_or_path=str(setup / "start"), image_size=0))
    args = (processor, str(setup / "data"), "train", ["depth_comparison"], 6, 12, 0, [])
    greedy = AnchorItems(*args, answers="greedy", model=model)
    dataset = AnchorItems(*args)
    assert [it.input_ids[: it.n_prompt].tolist() for it in greedy.items] == [
        it.input_ids[: it.n_prompt].tolist() for it in dataset.items
    ]  # the same prompts; only the answers differ
    model.eval()
    with torch.no_grad():
        agree = {}
        for name, anchor in (("greedy", greedy), ("dataset", dataset)):
            logits, targets = answer_logits(
                model, anchor.collate([[it] for it in anchor.items])
            )  # [N, V], [N]
            agree[name] = float((logits.argmax(-1) == targets).float().mean())
    assert agree["greedy"] > 0.8 and agree["dataset"] < 0.5, agree
    with pytest.raises(ValueError, match="'sampled'"):
        AnchorItems(*args, answers="sampled", model=model)


def test_grpo_with_anchor_logs_its_kl_and_margin_drop(setup):
    from spatial_backbone.data.io import load_split
    from spatial_backbone.rl.grpo import train_rl

    untrained = {"depth_comparison", "counting", "distance"}
    trained = sorted({it["skill"] for it in load_split(setup / "data", "train")} - untrained)
    cfg = small_cfg(
        setup,
        "anchored",
        trained,
        beta=0.01,
        anchor_coef=1.0,
        anchor_margin_coef=1.0,
        anchor_items=2,
        anchor_pool=16,
    )
    train_rl(cfg)
    steps = [r for r in map(json.loads, open(setup / "anchored" / "history.jsonl")) if "reward" in r]
    assert all("anchor/kl" in r and "anchor/margin_drop" in r for r in steps)
    assert steps[0]["anchor/kl"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference
    assert steps[0]["anchor/margin_drop"] == pytest.approx(0.0, abs=1e-6)


def test_rl_soup_script_trains_each_seed_once_and_soups_them(setup):
    """scripts/rl_soup.sh: one svla-rl run per seed, then svla-soup of them; a rerun reuses finished seeds."""
    from spatial_backbone.factory import build_backbone
    from spatial_backbone.soup import SOUP_MANIFEST

    out = setup / "rl_soup"
    overrides = [
        "max_steps=2",
        "save_steps=2",
        "progress=false",
        "grpo.anchor_coef=0",  # the tiny dataset is too small to hold out anchor skills
        "grpo.num_generations=2",
        "grpo.prompts_per_step=2",
        "grpo.max_completion_length=6",
        "data.skills=[]",
        "data.formats=[]",
        "data.answer_types=[word,choice]",
        "data.max_answer_tokens=64",
    ]
    script = [str(ROOT / "scripts" / "rl_soup.sh"), str(setup / "start"), str(setup / "data"), str(out)]
    env = {**os.environ, "SEEDS": "0 1", "ALPHA": "1.5"}
    subprocess.run(["bash", *script, *overrides], check=True, env=env, capture_output=True, timeout=600)
    manifest = json.loads((out / "soup" / SOUP_MANIFEST).read_text())
    assert [i["path"] for i in manifest["inputs"]] == [str(out / f"seed_{s}" / "backbone") for s in (0, 1)]
    assert manifest["alpha"] == 1.5 and manifest["base"]["path"] == str((setup / "start").resolve())
    for s in (0, 1):
        assert json.loads((out / f"seed_{s}" / "summary.json").read_text())["steps"] == 2
        assert f"\nseed: {s}\n" in (out / f"seed_{s}" / "rl_config.yaml").read_text()
    model, _ = build_backbone(BackboneConfig(name_or_path=str(out / "soup"), image_size=0))
    assert model.config.model_type == "qwen2_5_vl"
    weights = out / "seed_0" / "backbone" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    subprocess.run(["bash", *script, *overrides], check=True, env=env, capture_output=True, timeout=600)
    assert weights.stat().st_mtime_ns == before  # finished seeds are not trained again
