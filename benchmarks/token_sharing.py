"""How often do two objects fall into the same image token? Per camera and image size, from a dataset's
`privileged.objects` (every object's (u, v) in each camera), at each episode's first frame.

Qwen2.5-VL merges 2x2 patches of 14 px: an S px image gives an (S / 28) x (S / 28) grid of language-model
tokens (112 px: 4 x 4). An object's token is the one its centre projects into (the object probe's labels use
the same rule, `vla.object_labels.token_targets`); a token that holds two objects cannot say which of them is
"the leftmost cube" on its own. Prints, per camera and size, the share of objects that share their token with
another, and the rows and columns of the grid the objects occupy.

    .venv/bin/python benchmarks/token_sharing.py --dataset /work/runs/datasets2/fresh5p5000 [--sizes 112 224]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import numpy as np  # noqa: E402

from envs.record import OBJECTS_KEY  # noqa: E402
from envs.tasks.base import OBJECT_FIELDS, OBJECT_SLOTS, PRIVILEGED_CAMERAS  # noqa: E402

MERGED_PATCH = 28  # px per language-model image token side (14 px patches, 2x2 merge)


def first_frames(root: str) -> np.ndarray:
    """`privileged.objects` of every episode's first frame: [E, OBJECT_SLOTS, len(OBJECT_FIELDS)]."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id=f"local/{Path(root).name}", root=root)
    if OBJECTS_KEY not in ds.meta.features:
        raise SystemExit(f"{root} has no {OBJECTS_KEY!r}: record it with svla-record (since session 19)")
    table = ds.hf_dataset.select_columns([OBJECTS_KEY, "frame_index"]).with_format("numpy")[:]
    objs = np.asarray(table[OBJECTS_KEY], dtype=np.float32)[np.asarray(table["frame_index"]) == 0]
    return objs.reshape(len(objs), OBJECT_SLOTS, len(OBJECT_FIELDS))


def sharing(objs: np.ndarray, camera: str, size: int) -> dict[str, float]:
    """Share of visible objects whose token holds another object, and the grid rows/columns occupied."""
    f = {k: i for i, k in enumerate(OBJECT_FIELDS)}
    grid = size // MERGED_PATCH
    u, v = objs[..., f[f"{camera}_u"]], objs[..., f[f"{camera}_v"]]  # [E, N], in-view in [-1, 1]
    seen = (objs[..., f["present"]] > 0.5) & (np.abs(u) <= 1) & (np.abs(v) <= 1)  # [E, N]
    col = np.clip(((u + 1) / 2 * grid).astype(int), 0, grid - 1)
    row = np.clip(((v + 1) / 2 * grid).astype(int), 0, grid - 1)
    token = row * grid + col  # [E, N]
    shared = total = 0
    for e in range(len(objs)):
        _, counts = np.unique(token[e][seen[e]], return_counts=True)
        shared += int(counts[counts > 1].sum())
        total += int(counts.sum())
    return {
        "grid": grid,
        "objects": total,
        "shared": shared / max(total, 1),
        "rows": len(np.unique(row[seen])),
        "cols": len(np.unique(col[seen])),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    args = p.parse_args()
    objs = first_frames(args.dataset)
    print(f"{len(objs)} episodes (first frames) of {args.dataset}")
    for cam in PRIVILEGED_CAMERAS:
        for size in args.sizes:
            s = sharing(objs, cam, size)
            print(
                f"{cam:<6} {size:>4} px ({s['grid']}x{s['grid']} tokens): {100 * s['shared']:5.1f}% of "
                f"{s['objects']} visible objects share their token; objects occupy {s['rows']} rows x "
                f"{s['cols']} columns"
            )


if __name__ == "__main__":
    main()
