"""Device, dtype, attention implementation and CPU thread count: decided here, once, with the reason logged.

Rules (DESIGN.md section 6):
- CUDA available -> bf16 (if the GPU supports it, else fp16) and `flash_attention_2` when `flash_attn`
  imports, else `sdpa`.
- CPU -> fp32 + `sdpa`, and ONE torch thread by default on small machines: on the 2-core machines this project
  is developed on, the same step swung from 45 ms to 3.9 s with two threads; one thread was stable. Every
  entry point calls `resolve_runtime` and passes the result down; nothing else picks a device or dtype.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_ATTNS = ("auto", "sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs. `reason` says why each choice was made (it is logged)."""

    device: torch.device
    dtype: torch.dtype
    attn_implementation: str
    num_threads: int
    reason: str


def flash_attn_available() -> bool:
    """True when the optional GPU extra `flash-attn` is installed (it is never imported on CPU)."""
    return importlib.util.find_spec("flash_attn") is not None


def resolve_runtime(
    device: str = "auto", dtype: str = "auto", attn_implementation: str = "auto", num_threads: int = 0
) -> Runtime:
    """Pick device, dtype, attention kernel and thread count; `auto` follows the rules in the module
    docstring.

    `num_threads=0` means: 1 thread on machines with <= 4 cores, else half the cores.
    """
    if attn_implementation not in _ATTNS:
        raise ValueError(f"attn_implementation={attn_implementation!r} is not one of {_ATTNS}")
    if dtype != "auto" and dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(_DTYPES)} or 'auto'")
    reasons = []
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        reasons.append(f"device={dev.type} ({'CUDA available' if dev.type == 'cuda' else 'no CUDA device'})")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available; use device=auto or cpu"
            )
        reasons.append(f"device={dev.type} (requested)")

    if dtype == "auto":
        if dev.type == "cuda":
            dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            reasons.append(f"dtype={dt} (GPU)")
        else:
            dt = torch.float32
            reasons.append("dtype=float32 (CPU: bf16 matmuls are slow and lossy on CPU)")
    else:
        dt = _DTYPES[dtype]
        reasons.append(f"dtype={dt} (requested)")

    if attn_implementation == "auto":
        if dev.type == "cuda" and dt in (torch.bfloat16, torch.float16) and flash_attn_available():
            attn = "flash_attention_2"
            reasons.append("attn=flash_attention_2 (CUDA + half precision + flash_attn installed)")
        else:
            attn = "sdpa"
            reasons.append("attn=sdpa (flash_attn needs CUDA, half precision and the `gpu` extra)")
    else:
        if attn_implementation == "flash_attention_2" and not (dev.type == "cuda" and flash_attn_available()):
            raise ValueError(
                "attn_implementation='flash_attention_2' needs a CUDA device and the flash-attn package "
                "(`uv sync --extra gpu` on a CUDA machine); use attn_implementation=auto or sdpa"
            )
        attn = attn_implementation
        reasons.append(f"attn={attn} (requested)")

    cores = os.cpu_count() or 1
    if num_threads <= 0:
        threads = 1 if cores <= 4 else cores // 2
        reasons.append(
            f"threads={threads} ({cores} cores; 2 threads on 2 cores made step times swing 45 ms-3.9 s)"
        )
    else:
        threads = num_threads
        reasons.append(f"threads={threads} (requested)")
    return Runtime(dev, dt, attn, threads, "; ".join(reasons))


def apply_runtime(rt: Runtime) -> None:
    """Apply the process-wide parts of a runtime (thread count) and log the reasons once."""
    if torch.get_num_threads() != rt.num_threads:
        torch.set_num_threads(rt.num_threads)
    log.info("runtime: %s", rt.reason)
