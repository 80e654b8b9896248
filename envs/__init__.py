"""spatial-vla environments: MuJoCo tabletop scenes, spatial-language tasks, scripted experts.

Importing `envs` registers the `svla/*` Gymnasium ids (string entry points; no MuJoCo model is loaded).
`envs.make(task_id, **kw)` is `gymnasium.make` with an error listing the valid ids; `envs.TASK_IDS` lists
them. Modules: `scene` (scene specs, ground truth, cameras, rendering), `robot` (gantry arm), `tasks` (envs),
`experts` (scripted experts and `ExpertActionWrapper`).
"""

import os

if not os.environ.get("DISPLAY"):  # MuJoCo renders offscreen through EGL when there is no display
    os.environ.setdefault("MUJOCO_GL", "egl")

from envs.registration import TASK_IDS, make, register_all, task_id_for

register_all()

__all__ = ["TASK_IDS", "make", "register_all", "task_id_for"]
