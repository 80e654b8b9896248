"""`svla-soup`: average backbones fine-tuned from one start in weight space (a model soup).

Design. Given a start backbone theta_0 and backbones theta_1..theta_k fine-tuned from it (e.g. GRPO runs that
differ only in their seed), write

    theta = theta_0 + alpha * mean_i(theta_i - theta_0)                          # every floating tensor

With alpha = 1 this is the uniform soup of Wortsman et al. 2022 ("Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time"); alpha != 1 scales the averaged update
as a task vector (Ilharco et al. 2023, "Editing models with task arithmetic"). Why here: a seeded GRPO run
moves the skills it trains the same way in every seed, but flips a few near-chance answers on the skills it
does not train, different ones in each seed (docs/rl.md, session 8). Averaging the updates keeps the shared
part and shrinks the seed-specific one; alpha > 1 then gives back the gain that averaging costs. Measured on
the tiny default in docs/rl.md, session 9.

The inputs must share every tensor name, shape and dtype with the start (a soup of different architectures
or of backbones not fine-tuned from `base` is meaningless, and is refused naming the tensor). Non-floating
tensors must be equal in every input. Weights are read tensor by tensor with `safetensors.safe_open`, shard by
shard in the layout of the first input (a sharded real checkpoint stays sharded), so memory holds one shard of
the result at a time. Everything but the weights (config, tokenizer, processor, chat template) is copied from
the first input; `soup.json` records the recipe and the sha256 of every input's weights. The output directory
is written atomically and loads through the backbone factory like any backbone directory.

    svla-soup base=outputs/sft/backbone inputs=[outputs/rl_s0/backbone,outputs/rl_s1/backbone] alpha=1.5 \
        out_dir=outputs/soup/backbone

No library in the lock does this for a Qwen2.5-VL directory: `mergekit` would add a dependency tree for a
20-line average, and PEFT's `add_weighted_adapter` merges LoRA adapters only.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from envs.atomic import atomic_dir
from envs.hydra_utils import ConfigError, hydra_app
from envs.manifest import git_state, hash_files
from spatial_backbone.factory import inspect_checkpoint

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
SOUP_MANIFEST = "soup.json"


@dataclass
class SoupConfig:
    """inputs: backbone directories fine-tuned from `base`. base: their start backbone (empty = none: a plain
    uniform average, which needs alpha = 1). alpha: scale of the averaged update (1 = uniform soup).
    out_dir: where the soup backbone goes. overwrite: replace an existing out_dir."""

    inputs: list[str] = field(default_factory=list)
    base: str = ""
    alpha: float = 1.0
    out_dir: str = "outputs/soup/backbone"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs is empty: list the fine-tuned backbone directories, e.g. inputs=[a,b]")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha={self.alpha!r} must be a finite number > 0 (1 = the uniform soup)")
        if not self.base and self.alpha != 1.0:
            raise ValueError(
                f"alpha={self.alpha!r} scales the update from a start backbone: set base=<the backbone the "
                "inputs were fine-tuned from>, or alpha=1 for a plain average"
            )


def weight_files(backbone_dir: Path) -> dict[str, list[str]]:
    """{safetensors file name: [tensor names]} of a backbone directory (sharded or single-file)."""
    problem = inspect_checkpoint(backbone_dir)
    if problem:
        raise ConfigError(f"{str(backbone_dir)!r} is not a Qwen2.5-VL backbone directory: {problem}")
    index = backbone_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
            raise ConfigError(f"{index} is not a safetensors index ({err!r}); re-save the backbone") from None
        files: dict[str, list[str]] = {}
        for name, file in weight_map.items():
            files.setdefault(file, []).append(name)
        missing = [f for f in files if not (backbone_dir / f).is_file()]
        if missing:
            raise ConfigError(f"{index} lists shards that are not there: {missing}")
        return files
    single = backbone_dir / SINGLE_FILE
    if not single.is_file():
        raise ConfigError(
            f"{str(backbone_dir)!r} has no {SINGLE_FILE} or {INDEX_FILE} (only safetensors weights can be "
            "averaged; re-save it with save_pretrained(safe_serialization=True))"
        )
    with _open(single) as f:
        return {SINGLE_FILE: list(f.keys())}


def _open(file: Path):
    """safe_open, with a corrupt or truncated file named in the error."""
    try:
        return safe_open(file, "pt")
    except Exception as err:  # safetensors raises its own SafetensorError / OSError
        raise ConfigError(
            f"{file} is not a readable safetensors file ({err}); re-save or re-copy it"
        ) from None


class _Reader:
    """Tensors by name from a backbone directory's safetensors files, whatever their sharding; each file is
    opened once (memory-mapped) and read tensor by tensor."""

    def __init__(self, backbone_dir: Path):
        self.dir = backbone_dir
        self.files = weight_files(backbone_dir)  # {file: [tensor names]}
        self.where = {n: file for file, names in self.files.items() for n in names}
        self._handles: dict[str, Any] = {}

    def get(self, name: str) -> torch.Tensor:
        file = self.where[name]
        if file not in self._handles:
            self._handles[file] = _open(self.dir / file)
        return self._handles[file].get_tensor(name)

    def weights_sha256(self) -> str:
        return hash_files([self.dir / f for f in self.files])


def soup_tensor(
    name: str, base: torch.Tensor | None, tuned: Iterable[torch.Tensor], alpha: float
) -> torch.Tensor:
    """base + alpha * mean(tuned - base) for one floating tensor, or the shared value of a non-floating one.
    `base=None` means the plain mean (alpha must then be 1). The inputs are read one at a time into a float32
    sum (float64 for float64 weights): memory is two copies of the tensor, whatever the number of inputs."""
    ref, total, count = base, None, 0
    for t in tuned:
        ref = t if ref is None else ref
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise ConfigError(
                f"tensor {name!r}: shape {tuple(t.shape)} / {t.dtype} in one input, {tuple(ref.shape)} / "
                f"{ref.dtype} in another: the inputs are not fine-tunes of one backbone"
            )
        if t.is_floating_point():
            acc = torch.promote_types(t.dtype, torch.float32)
            total = t.to(acc, copy=True) if total is None else total.add_(t.to(acc))
        elif not torch.equal(t, ref):
            raise ConfigError(f"non-floating tensor {name!r} differs between inputs; it cannot be averaged")
        count += 1
    if count == 0:
        raise ValueError("soup_tensor needs at least one input tensor")
    if total is None:  # a non-floating tensor, equal everywhere
        return ref.clone()
    mean = total.div_(count)
    out = mean if base is None else mean.sub_(base.to(mean.dtype)).mul_(alpha).add_(base.to(mean.dtype))
    if not torch.isfinite(out).all():
        raise ConfigError(
            f"tensor {name!r} of the soup is not finite (an input holds NaN/inf, or alpha is huge)"
        )
    return out.to(ref.dtype).contiguous()


def make_soup(cfg: SoupConfig) -> Path:
    """Write the soup backbone to `cfg.out_dir` (atomically) and return its path."""
    inputs = [Path(p).expanduser().resolve() for p in cfg.inputs]
    base_dir = Path(cfg.base).expanduser().resolve() if cfg.base else None
    out = Path(cfg.out_dir).expanduser().resolve()
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"out_dir {str(out)!r} exists; pass overwrite=true to replace it")
    if out in inputs or out == base_dir:
        raise ConfigError(f"out_dir {str(out)!r} is one of the inputs or the base; choose a new directory")
    readers = [_Reader(p) for p in inputs]
    base = _Reader(base_dir) if base_dir else None
    names = set(readers[0].where)
    for r in [*readers[1:], *([base] if base else [])]:
        extra = sorted(set(r.where) ^ names)
        if extra:
            raise ConfigError(
                f"{str(r.dir)!r} and {str(inputs[0])!r} hold different tensors (e.g. {extra[:3]}): the "
                "inputs of a soup must be fine-tuned from the same backbone"
            )

    def write(tmp: Path) -> None:
        for item in inputs[0].iterdir():
            if item.is_file() and not item.name.endswith(".safetensors") and item.name != SOUP_MANIFEST:
                shutil.copy2(item, tmp / item.name)
        for file, file_names in readers[0].files.items():  # the first input's shard layout
            tensors = {
                n: soup_tensor(n, base.get(n) if base else None, (r.get(n) for r in readers), cfg.alpha)
                for n in file_names
            }
            save_file(tensors, str(tmp / file), metadata={"format": "pt"})
        (tmp / SOUP_MANIFEST).write_text(json.dumps(soup_manifest(cfg, readers, base), indent=1))

    return atomic_dir(out, write)


def soup_manifest(cfg: SoupConfig, readers: list[_Reader], base: _Reader | None) -> dict[str, Any]:
    return {
        "recipe": "base + alpha * mean(input - base)" if base else "mean(input)",
        "alpha": cfg.alpha,
        "base": {"path": str(base.dir), "weights_sha256": base.weights_sha256()} if base else None,
        "inputs": [{"path": str(r.dir), "weights_sha256": r.weights_sha256()} for r in readers],
        "git": git_state(),
    }


def run(cfg: SoupConfig) -> Path:
    out = make_soup(cfg)
    what = f"{cfg.base} + {cfg.alpha} x mean update of" if cfg.base else "mean of"
    print(f"soup ({what} {len(cfg.inputs)} backbones) written to {out}")
    return out


main = hydra_app("soup", SoupConfig)(run)

if __name__ == "__main__":
    main()
