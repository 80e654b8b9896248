"""`svla-spatial-data`: render random MuJoCo scenes and write the spatial VQA / reasoning / pretext dataset.

    svla-spatial-data                                        # ~20k items into outputs/spatial_data
    svla-spatial-data debug=spatial_data_fast out_dir=/tmp/sd
    svla-spatial-data skills=[grounding_point,grounding_box] scenes.train=5000 overwrite=true

The schema is `spatial_backbone.data.config.SpatialDataConfig`; the format is described in
docs/spatial_data.md.
"""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.table import Table

from envs.hydra_utils import hydra_app
from spatial_backbone.data.config import SpatialDataConfig
from spatial_backbone.data.io import load_manifest


def run(cfg: SpatialDataConfig) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from spatial_backbone.data.generate import generate  # after MUJOCO_GL is set

    out = generate(cfg)
    manifest = load_manifest(out)
    table = Table(title=f"spatial dataset {out} ({manifest['seconds']:.1f} s)")
    for col in ("split", "scenes", "items", "skills"):
        table.add_column(col)
    for split, c in manifest["splits"].items():
        table.add_row(split, str(c["scenes"]), str(c["items"]), str(len(c["skills"])))
    Console().print(table)
    total = sum(c["items"] for c in manifest["splits"].values())
    Console().print(
        f"{total} items in {manifest['seconds']:.1f} s ({total / max(manifest['seconds'], 1e-9):.0f} "
        f"items/s) with {cfg.num_workers} workers"
    )
    return {"out_dir": str(out), "items": total, "seconds": manifest["seconds"]}


main = hydra_app("spatial_data", SpatialDataConfig)(run)

if __name__ == "__main__":
    main()
