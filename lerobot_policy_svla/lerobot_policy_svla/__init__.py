"""lerobot plugin: the spatial-vla policy as lerobot policy type `svla`.

lerobot imports this package when its CLIs start (`register_third_party_plugins`: distributions named
`lerobot_policy_*`); importing it registers `SvlaConfig` under `svla`. lerobot then finds the rest by naming
convention: `modeling_svla.SvlaPolicy` (`get_policy_class`) and `processor_svla.make_svla_pre_post_processors`
(`make_pre_post_processors` without a pretrained path). `svla-export-lerobot` (`export.py`) turns an
`svla-train` checkpoint into a directory `lerobot-eval --policy.path=<dir>` loads. It also registers the env
type `svla` (`env_svla.SvlaEnv`: our MuJoCo tasks for `lerobot-eval --env.type=svla`). See
docs/lerobot_plugin.md.
"""

from .configuration_svla import POLICY_TYPE, SvlaConfig
from .env_svla import SvlaEnv

__all__ = ["POLICY_TYPE", "SvlaConfig", "SvlaEnv"]
