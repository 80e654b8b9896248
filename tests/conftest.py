"""Shared test setup: headless MuJoCo rendering (EGL; no display on these machines)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
