"""Atomic directory writes: build the result in a temporary sibling directory, then rename it into place.

A crash or kill -9 mid-write never leaves a half-written directory at the destination (at worst a hidden
`.<name>.tmp-*` sibling). Used for backbones, policy checkpoints and spatial datasets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_dir(out_dir: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Run `write(tmp_dir)`, then rename tmp_dir to `out_dir` (replacing an older one). Returns `out_dir`."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
