"""lerobot env type `svla`: our MuJoCo tasks under `lerobot-eval --env.type=svla --env.task=svla/Lift-v0`.

The env is the one `svla-eval` rolls out (`envs.record.RecordEnvConfig(...).make()`), with one wrapper for
lerobot's rollout loop (`lerobot.scripts.lerobot_eval.rollout`):
- the language instruction leaves the observation (lerobot's `preprocess_observation` turns every remaining
  array into a float tensor, which a string array is not) and is served as the `task_description` attribute,
  which lerobot-eval reads into the batch's `task` after every step (`task` is the env id);
- `render_mode="rgb_array"` so lerobot-eval can write its videos, and an integer `render_fps` (our envs give
  the control frequency as a float, which lerobot's video writer (PyAV) rejects).
`features` (images [H, W, 3] per camera, `agent_pos`, `action`) come from one headless env built when the
config is made; `features_map` maps them onto the policy keys (`vla.processor.image_key`, ...). A policy whose
one camera is read as `observation.image` gets `pixels` as a lone array, which lerobot names so.
Tested on the `svla/*` tasks; other ids `RecordEnvConfig` accepts (MetaWorld) are built the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import gymnasium as gym
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig

INSTRUCTION_KEY, PIXELS_KEY = "instruction", "pixels"
OBS_IMAGE = "observation.image"  # lerobot's key of a lone `pixels` array


class TaskDescriptionObservation(gym.Wrapper):
    """Moves `obs["instruction"]` to the `task_description` attribute (lerobot-eval's `env.call`)."""

    def __init__(self, env: gym.Env, single_image: str | None = None):
        super().__init__(env)
        fps = env.metadata.get("render_fps") or 10
        self.metadata = {**env.metadata, "render_fps": max(1, round(fps))}
        spaces = {k: v for k, v in env.observation_space.spaces.items() if k != INSTRUCTION_KEY}
        self.single_image = single_image
        if single_image is not None:
            spaces[PIXELS_KEY] = spaces[PIXELS_KEY][single_image]
        self.observation_space = gym.spaces.Dict(spaces)
        self.task_description = ""
        self.task = env.spec.id if env.spec is not None else ""  # lerobot's env check wants both attributes

    def _split(self, obs: dict) -> dict:
        obs = dict(obs)
        self.task_description = str(obs.pop(INSTRUCTION_KEY, self.task_description))
        if self.single_image is not None:
            obs[PIXELS_KEY] = obs[PIXELS_KEY][self.single_image]
        return obs

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._split(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._split(obs), reward, terminated, truncated, info


def _single_image(cameras: list[str]) -> str | None:
    """The camera to serve as a lone `pixels` array, when the policy reads it as `observation.image`
    (lerobot's `preprocess_observation` names dict cameras `observation.images.<cam>`, an array
    `observation.image`)."""
    from vla.processor import image_key

    return cameras[0] if len(cameras) == 1 and image_key(cameras[0]) == OBS_IMAGE else None


def _make_env(record_cfg, render: bool) -> gym.Env:
    env = record_cfg.make(render_mode="rgb_array") if render else record_cfg.make()
    return TaskDescriptionObservation(env, _single_image(list(record_cfg.cameras)))


@EnvConfig.register_subclass("svla")
@dataclass
class SvlaEnv(EnvConfig):
    """task: an env id `svla-eval` accepts (e.g. `svla/Lift-v0`).
    fps: control frequency (the env's `control_hz`).
    image_size, cameras: as in `conf/env/*.yaml`.
    episode_length: the episode limit (`max_episode_steps` in `conf/env/*.yaml`)."""

    task: str | None = "svla/Lift-v0"
    fps: int = 10
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    episode_length: int = 60

    def __post_init__(self) -> None:
        headless = self.record_config(cameras=[]).make()
        try:
            state = headless.observation_space["agent_pos"].shape
            action = headless.action_space.shape
        finally:
            headless.close()
        from vla.processor import image_key

        shape = (self.image_size, self.image_size, 3)
        self.features = {f"pixels/{c}": PolicyFeature(FeatureType.VISUAL, shape) for c in self.cameras}
        self.features["agent_pos"] = PolicyFeature(FeatureType.STATE, tuple(state))
        self.features["action"] = PolicyFeature(FeatureType.ACTION, tuple(action))
        self.features_map = {f"pixels/{c}": image_key(c) for c in self.cameras}
        self.features_map |= {"agent_pos": "observation.state", "action": "action"}

    def record_config(self, cameras: list[str] | None = None):
        from envs.record import RecordEnvConfig

        return RecordEnvConfig(
            id=self.task,
            image_size=self.image_size,
            cameras=list(self.cameras if cameras is None else cameras),
            max_episode_steps=self.episode_length,
            control_hz=float(self.fps),
        )

    @property
    def gym_kwargs(self) -> dict:
        return {}

    def create_envs(
        self, n_envs: int, use_async_envs: bool = False
    ) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        fns = [partial(_make_env, self.record_config(), True) for _ in range(n_envs)]
        if use_async_envs and n_envs > 1:
            vec = gym.vector.AsyncVectorEnv(
                fns, context="spawn", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
        else:
            vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        return {self.type: {0: vec}}
