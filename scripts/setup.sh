#!/usr/bin/env bash
# Set up spatial-vla on a fresh Debian machine with Python 3.12: system libraries, uv, and the locked venv.
# Idempotent: a second run only checks. Sourced by run.sh and test.sh; safe to run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 1. System packages: FFmpeg 5.1 shared libraries (torchcodec decodes LeRobot videos) and Mesa EGL (MuJoCo's
#    offscreen renderer). Installed only when missing.
SYSTEM_PACKAGES=(libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8
                 libegl1 libegl-mesa0 libgl1-mesa-dri)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "[setup] not a Debian system: make sure FFmpeg 5.x shared libraries and Mesa EGL are installed" >&2
fi

# 2. uv (the lock-file installer). Bootstrapped from PyPI into a private venv when not on PATH.
UV_TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/svla-tools"
if ! uv --version >/dev/null 2>&1; then
  if [ ! -x "$UV_TOOLS/bin/uv" ]; then
    echo "[setup] bootstrapping uv into $UV_TOOLS"
    PY=$(command -v python3.12 || command -v python3)
    "$PY" -m venv "$UV_TOOLS"
    "$UV_TOOLS/bin/pip" install -q --disable-pip-version-check uv
  fi
  export PATH="$UV_TOOLS/bin:$PATH"
fi

# 3. The project environment, exactly as locked (uv.lock), with the dev group (pytest, ruff, hypothesis).
uv sync --frozen --quiet
echo "[setup] environment ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import torch, transformers, lerobot, mujoco; print(f"torch {torch.__version__}, transformers {transformers.__version__}, lerobot {lerobot.__version__}, mujoco {mujoco.__version__}")')"
