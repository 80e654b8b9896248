"""Stage records (`<run_dir>/<stage>/stage.json`): cache keys, completeness, atomic writes.

Design:
- A stage's key is sha256 over its name, the YAML of its typed config (with the run directory written as
  `$RUN_DIR`, so the same config in another run directory has the same key) and the output hashes of its
  inputs. A finished stage whose key matches and whose listed outputs exist is skipped.
- Every finished run of a stage gets a fresh `output_hash` (its key + a random nonce): downstream keys hash
  it, so rerunning a stage (`force=`) reruns everything that consumed it, even when the rerun reproduced the
  same bytes. A skipped stage keeps its output hash, so nothing downstream is disturbed.
- `stage.json` is written when a stage starts (`status: running`) and when it ends (`complete`), each time to
  a temporary file renamed into place, so a kill -9 leaves either the old record or the new one. A `running`
  record with the current key means the stage was interrupted: resumable stages continue (`resume=true`),
  the others start over.
- The record is the stage's manifest: config, seed, inputs, git commit, package versions, wall time, and the
  stage's own result summary (what the report reads).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envs.hydra_utils import to_yaml
from envs.manifest import git_state, package_versions

RECORD = "stage.json"


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a file through a temporary sibling and `os.replace` (readers see the old or the new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def config_text(cfg: Any, run_dir: Path) -> str:
    """Canonical text of a stage config: YAML of dataclasses (lists and dicts of them too), run dir masked."""
    if dataclasses.is_dataclass(cfg):
        text = to_yaml(cfg)
    elif isinstance(cfg, dict):
        text = "".join(f"== {k}\n{config_text(v, run_dir)}" for k, v in cfg.items())
    elif isinstance(cfg, list | tuple):
        text = "".join(f"-- {i}\n{config_text(v, run_dir)}" for i, v in enumerate(cfg))
    else:
        text = json.dumps(cfg, sort_keys=True) + "\n"
    for form in sorted({str(run_dir.resolve()), str(run_dir)}, key=len, reverse=True):
        text = text.replace(form, "$RUN_DIR")
    return text


def stage_key(name: str, config: str, inputs: dict[str, str]) -> str:
    h = hashlib.sha256(f"{name}\n{config}\n".encode())
    for k in sorted(inputs):
        h.update(f"{k}={inputs[k]}\n".encode())
    return h.hexdigest()


def read_record(stage_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((stage_dir / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(record: dict[str, Any] | None, key: str, run_dir: Path) -> bool:
    """The record is a finished run with this key and every output it listed still exists."""
    return (
        record is not None
        and record.get("status") == "complete"
        and record.get("key") == key
        and all((run_dir / p).exists() for p in record.get("outputs", []))
    )


def is_interrupted(record: dict[str, Any] | None, key: str) -> bool:
    return record is not None and record.get("status") == "running" and record.get("key") == key


@dataclasses.dataclass
class StageRun:
    """One run of a stage: the record written at start and completed at the end."""

    name: str
    stage_dir: Path
    key: str
    config: str
    inputs: dict[str, str]
    seed: int
    resumed: bool = False
    started: float = dataclasses.field(default_factory=time.time)

    def base(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "key": self.key,
            "inputs": self.inputs,
            "seed": self.seed,
            "resumed": self.resumed,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "git": git_state(),
            "versions": package_versions(),
            "config": self.config,
        }

    def start(self) -> None:
        write_atomic(self.stage_dir / RECORD, json.dumps(self.base() | {"status": "running"}, indent=1))

    def finish(self, result: dict[str, Any], outputs: list[str], seconds: float) -> dict[str, Any]:
        record = self.base() | {
            "status": "complete",
            "output_hash": stage_key(self.name, self.key, {"nonce": secrets.token_hex(8)}),
            "seconds": round(seconds, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "outputs": outputs,
            "result": result,
        }
        write_atomic(self.stage_dir / RECORD, json.dumps(record, indent=1, default=str))
        return record
