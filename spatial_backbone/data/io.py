"""On-disk format of a spatial dataset, and loading it (plain Python, HF `datasets`, images).

Layout (FORMAT_VERSION 1; full description with examples in docs/spatial_data.md):

    <dataset>/
      manifest.json            format_version, item/scene/skill counts per split, generation seconds, config,
                               skill registry (family, answer_type)
      train.jsonl val.jsonl test.jsonl shifted.jsonl      one item per line
      images/<split>/<scene:06d>_<k>.png                 images, shared by the items of a scene

Each JSONL line: id, skill, answer_type, format, reward, images (paths relative to the dataset root), system
(str or null), question, answer (the full target text), core_answer (without wrappers), gt and meta. `gt` and
`meta` are stored as JSON *strings* so that every line has the same flat schema (Arrow/parquet and HF
`datasets` need one schema; ground truth differs per answer type); `load_split` decodes them back to dicts.

Errors: a missing manifest, a line that is not JSON (a truncated write), a split whose item count differs from
the manifest, a missing field or an unreadable image raise `DataFormatError` naming the file (and line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FIELDS = (
    "id",
    "skill",
    "answer_type",
    "format",
    "reward",
    "images",
    "system",
    "question",
    "answer",
    "core_answer",
    "gt",
    "meta",
)


class DataFormatError(ValueError):
    """A dataset file is missing, corrupt or truncated; the message names the file."""


def write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    """Write records (gt/meta as dicts) as JSONL with gt/meta encoded as JSON strings."""
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            row = dict(r)
            row["gt"], row["meta"] = json.dumps(r["gt"]), json.dumps(r["meta"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataFormatError(
            f"{path} not found: {root} is not a spatial dataset (generate one with "
            "svla-spatial-data out_dir=...)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path} is corrupt: {err}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: format_version {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    return manifest


def load_split(root: str | Path, split: str, decode: bool = True) -> list[dict[str, Any]]:
    """The items of `split` as dicts (gt/meta decoded unless decode=False). Validates against the manifest."""
    root = Path(root)
    manifest = load_manifest(root)
    if split not in manifest["splits"]:
        raise DataFormatError(f"{root} has no split {split!r}; splits: {sorted(manifest['splits'])}")
    path = root / f"{split}.jsonl"
    if not path.is_file():
        raise DataFormatError(f"{path} is missing (the manifest lists split {split!r})")
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                if decode:
                    row["gt"], row["meta"] = json.loads(row["gt"]), json.loads(row["meta"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataFormatError(
                    f"{path}:{lineno} is corrupt or truncated ({err!r}); regenerate the dataset"
                ) from None
            missing = [k for k in FIELDS if k not in row]
            if missing:
                raise DataFormatError(f"{path}:{lineno} lacks fields {missing}")
            items.append(row)
    expected = manifest["splits"][split]["items"]
    if len(items) != expected:
        raise DataFormatError(
            f"{path} has {len(items)} items but the manifest says {expected}: the file is "
            "truncated or was edited; regenerate the dataset"
        )
    return items


def load_image(root: str | Path, rel: str) -> np.ndarray:
    """uint8 HxWx3 array of an item's image; a missing or corrupt file raises DataFormatError naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(root) / rel
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy (torch.from_numpy warns otherwise)
    except (OSError, UnidentifiedImageError) as err:
        raise DataFormatError(f"image {path} is missing or corrupt ({err})") from None


def load_images(root: str | Path, item: dict[str, Any]) -> list[np.ndarray]:
    return [load_image(root, p) for p in item["images"]]


def to_hf_dataset(root: str | Path, split: str, with_images: bool = False):
    """The split as a Hugging Face `datasets.Dataset` (gt/meta stay JSON strings). With `with_images`, the
    `images` column holds decoded images (`Sequence(Image())`) instead of relative paths."""
    import datasets

    root = Path(root)
    load_split(root, split, decode=False)  # validate first: clear errors instead of Arrow ones
    ds = datasets.load_dataset("json", data_files={split: str(root / f"{split}.jsonl")}, split=split)
    if with_images:
        ds = ds.map(lambda r: {"images": [str(root / p) for p in r["images"]]})
        ds = ds.cast_column("images", datasets.Sequence(datasets.Image()))
    return ds
