"""Every primary config in conf/ composes into its typed schema; bad keys and values fail with clear
errors."""

import pytest

from envs.hydra_utils import CONF_DIR, ConfigError, compose, to_config
from spatial_backbone.cli import BuildBackboneConfig
from spatial_backbone.config import BackboneConfig

# primary config name -> typed schema. Every *.yaml at the top of conf/ must be listed here.
APPS = {"build_backbone": BuildBackboneConfig}
# group options that each app is composed with (every option file of every group it uses).
GROUPS = {"build_backbone": ["backbone"]}


def _register_optional_apps():
    try:
        from envs.record_cli import RecordConfig  # noqa: F401  (added by the envs issue)
    except ImportError:
        return
    APPS.setdefault("record", RecordConfig)
    GROUPS.setdefault("record", ["env"])


_register_optional_apps()


def test_every_primary_config_is_covered():
    assert {p.stem for p in CONF_DIR.glob("*.yaml")} == set(APPS)


@pytest.mark.parametrize("app", sorted(APPS))
def test_primary_config_composes_with_every_group_option(app):
    schema = APPS[app]
    assert isinstance(compose(app, schema=schema), schema)
    for group in GROUPS[app]:
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            overrides = [f"{group}={option.stem}"]
            if option.stem == "pretrained":
                overrides.append("backbone.name_or_path=/models/Qwen2.5-VL-3B-Instruct")
            assert isinstance(compose(app, overrides, schema=schema), schema)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml")))
def test_debug_presets_compose_for_their_app(preset):
    app = next(a for a in sorted(APPS, key=len, reverse=True) if preset.startswith(a.replace("build_", "")))
    compose(app, [f"debug={preset}"], schema=APPS[app])


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
