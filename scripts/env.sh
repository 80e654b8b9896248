# Runtime environment shared by run.sh and test.sh (sourced).
# MuJoCo renders offscreen through EGL when there is no display (glfw needs one).
if [ -z "${DISPLAY:-}" ]; then export MUJOCO_GL="${MUJOCO_GL:-egl}"; fi
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-${MUJOCO_GL:-egl}}"
# Nothing is downloaded from model or dataset hubs: everything is built or generated locally.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM=false
