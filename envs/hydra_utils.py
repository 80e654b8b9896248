"""Hydra glue shared by every `svla-*` entry point.

Design: each app has a typed dataclass schema (the source of truth, with `__post_init__` validation) and a
primary YAML in `conf/` that mirrors it. The composed YAML is merged into the structured schema, so an unknown
key or a wrongly typed value fails before any work starts, with a message that quotes it. This module lives in
`envs` because `envs` is the bottom of the import graph (envs <- spatial_backbone <- vla) and all three use
it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid. The message names the key, the bad value and the fix."""


def to_config[T](raw: DictConfig | dict, schema: type[T]) -> T:
    """Merge a composed config into the dataclass `schema` and build the typed object.

    Keys that the schema does not know, and values of the wrong type, raise `ConfigError` naming them;
    `__post_init__` checks of the schema run on the result.
    """
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass, got {schema!r}")
    raw = OmegaConf.create(raw) if isinstance(raw, dict) else raw
    raw = OmegaConf.masked_copy(raw, [k for k in raw.keys() if k != "hydra"]) if "hydra" in raw else raw
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), raw)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        valid = ", ".join(f.name for f in dataclasses.fields(schema))
        raise ConfigError(
            f"invalid {schema.__name__} config: {err.msg if hasattr(err, 'msg') else err}. "
            f"Valid top-level keys: {valid}."
        ) from None
    except ValueError as err:  # a schema's __post_init__ check
        raise ConfigError(f"invalid {schema.__name__} config: {err}") from None


def to_yaml(cfg: Any) -> str:
    """The YAML of a typed config (dataclass) or a DictConfig, for manifests and checkpoints."""
    if dataclasses.is_dataclass(cfg):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(cfg)


def compose[T](config_name: str, overrides: Sequence[str] = (), schema: type[T] | None = None) -> Any:
    """Compose `conf/<config_name>.yaml` with overrides outside of a hydra app (tests, the pipeline)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        raw = hydra_compose(config_name=config_name, overrides=list(overrides))
    return to_config(raw, schema) if schema is not None else raw


def hydra_app[T](config_name: str, schema: type[T]) -> Callable[[Callable[[T], Any]], Callable[[], Any]]:
    """Decorator turning `fn(cfg: schema)` into a hydra console-script `main()` over
    `conf/<config_name>.yaml`."""

    def decorate(fn: Callable[[T], Any]) -> Callable[[], Any]:
        @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
        def _main(raw: DictConfig) -> Any:
            return fn(to_config(raw, schema))

        _main.__doc__ = fn.__doc__
        return _main

    return decorate
