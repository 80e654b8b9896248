"""Shared test setup: headless MuJoCo rendering (EGL), no network, a throwaway HF cache, one torch thread."""

import os
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"
# lerobot writes a datasets cache under HF_HOME when imported: never the user's own cache
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="svla-test-hf-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
