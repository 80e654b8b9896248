"""Every primary config in conf/ composes into its typed schema; bad keys and values fail with clear
errors."""

import pytest
from lerobot_policy_svla.export import ExportConfig

from envs.hydra_utils import CONF_DIR, ConfigError, compose, to_config, to_yaml
from envs.merge import MergeConfig
from envs.record import RecordConfig
from pipeline.config import PipelineConfig
from spatial_backbone.cli import BuildBackboneConfig
from spatial_backbone.config import BackboneConfig
from spatial_backbone.data.config import SpatialDataConfig
from spatial_backbone.evaluation.cli import SpatialEvalConfig
from spatial_backbone.rl.config import RLConfig
from spatial_backbone.sft.config import SFTConfig
from spatial_backbone.soup import SoupConfig
from vla.baselines.act_config import ActTrainConfig
from vla.dagger import DaggerConfig
from vla.evaluate import EvalConfig
from vla.train_config import TrainConfig

# primary config name -> typed schema. Every *.yaml at the top of conf/ must be listed here.
APPS = {
    "build_backbone": BuildBackboneConfig,
    "spatial_data": SpatialDataConfig,
    "spatial_eval": SpatialEvalConfig,
    "record": RecordConfig,
    "dagger": DaggerConfig,
    "train": TrainConfig,
    "train_act": ActTrainConfig,
    "eval": EvalConfig,
    "rl": RLConfig,
    "sft": SFTConfig,
    "merge": MergeConfig,
    "soup": SoupConfig,
    "pipeline": PipelineConfig,
    "export_lerobot": ExportConfig,
}
# group options that each app is composed with (every option file of every group it uses).
GROUPS = {
    "build_backbone": ["backbone"],
    "spatial_data": [],
    "spatial_eval": ["backbone"],
    "record": ["env"],
    "dagger": ["env"],
    "train": ["backbone", "head"],
    "train_act": [],
    "eval": ["env"],
    "rl": ["backbone"],
    "sft": ["backbone"],
    "merge": [],
    "soup": [],
    "pipeline": ["backbone", "head"],
    "export_lerobot": [],
}
# debug presets whose name is not `<app>_...`: preset -> app
ALIASES = {"fast": "pipeline"}
# values a config needs before it composes (required keys that have no default)
REQUIRED = {
    "eval": ["checkpoint=/path/to/checkpoint"],
    "dagger": ["checkpoint=/path/to/checkpoint"],
    "merge": ["inputs=[/data/lift,/data/reach]"],
    "soup": ["inputs=[/runs/rl_s0/backbone,/runs/rl_s1/backbone]"],
    "export_lerobot": ["checkpoint=/path/to/checkpoint", "output=/path/to/lerobot_policy"],
}


def test_every_primary_config_is_covered():
    assert {p.stem for p in CONF_DIR.glob("*.yaml")} == set(APPS)


@pytest.mark.parametrize("app", sorted(APPS))
def test_primary_config_composes_with_every_group_option(app):
    schema = APPS[app]
    assert isinstance(compose(app, REQUIRED.get(app, []), schema=schema), schema)
    for group in GROUPS[app]:
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            overrides = [f"{group}={option.stem}", *REQUIRED.get(app, [])]
            if option.stem == "pretrained":
                overrides.append("backbone.name_or_path=/models/Qwen2.5-VL-3B-Instruct")
            assert isinstance(compose(app, overrides, schema=schema), schema)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml")))
def test_debug_presets_compose_for_their_app(preset):
    app = ALIASES.get(preset) or next(
        a for a in sorted(APPS, key=len, reverse=True) if preset.startswith(a.replace("build_", ""))
    )
    base = compose(app, REQUIRED.get(app, []), schema=APPS[app])
    fast = compose(app, [f"debug={preset}", *REQUIRED.get(app, [])], schema=APPS[app])
    assert to_yaml(fast) != to_yaml(base), f"debug={preset} changes nothing (is it listed after _self_?)"


def test_yaml_mirrors_the_dataclass_defaults():
    cfg = compose("build_backbone", schema=BuildBackboneConfig)
    assert cfg.backbone == BackboneConfig()


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="not_a_key"):
        compose("build_backbone", ["+backbone.not_a_key=3"], schema=BuildBackboneConfig)


def test_bad_value_is_quoted():
    with pytest.raises(ValueError, match="image_size=7"):
        to_config({"backbone": {"image_size": 7}}, BuildBackboneConfig)
    with pytest.raises(ConfigError, match="seed"):
        to_config({"seed": "zero"}, BuildBackboneConfig)


def test_pretrained_without_a_path_is_an_error():
    with pytest.raises(ConfigError, match="name_or_path"):
        compose("build_backbone", ["backbone=pretrained"], schema=BuildBackboneConfig)


def test_pipeline_debug_fast_is_the_pipeline_fast_preset():
    """Issue 7 names `svla-pipeline debug=fast`: the alias composes exactly the tested `pipeline_fast`."""
    fast = compose("pipeline", ["debug=fast"], schema=APPS["pipeline"])
    assert to_yaml(fast) == to_yaml(compose("pipeline", ["debug=pipeline_fast"], schema=APPS["pipeline"]))
