"""Where does a multi-task VLA fail: finding the named object, or acting? Per-task losses of a checkpoint.

For each task of a merged suite dataset (`svla-merge` keeps the sources in order in
`meta/svla_recording.json`), evaluates the policy's own loss terms on `--frames` frames sampled from that
task's episodes, in eval mode: `l1` (action chunk, normalized units), `uv_l1` (where the pointers say the
target and goal are, image coordinates in [-1, 1]; 0.1 = 5% of the image width) and `aux_l1` (3D target/goal,
normalized). On the training dataset the numbers measure fit: a task with a high `uv_l1` has not learned which
object its words name; `uv_const` is the error of the best constant guess (each point's and camera's median
(u, v) over the probed frames of that task), the floor a policy that ignores the image would reach. To measure
generalization, merge recordings the checkpoint never saw (other recording
seeds, `svla-record seed=...`) into a suite and probe that: each source is reported on its own row.

    .venv/bin/python benchmarks/grounding_probe.py --dataset /work/runs/datasets/suite1700 \
        --checkpoint /work/runs/vla/suite_l1_4k/checkpoints/step_0004000 [more checkpoints]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402


def _leaf_sources(info: dict) -> list[dict]:
    """The recordings a merged dataset holds, in frame order (a merged source lists its own sources)."""
    return [leaf for src in info["sources"] for leaf in (_leaf_sources(src) if "sources" in src else [src])]


def task_frames(root: Path, frames: int, seed: int) -> dict[str, list[int]]:
    """Frame indices per source task of a merged dataset (sources in merge order; recordings of the same
    task in nested merges pooled), `frames` per task."""
    info = json.loads((root / "meta" / "svla_recording.json").read_text())
    g = torch.Generator().manual_seed(seed)
    spans: dict[str, list[torch.Tensor]] = {}
    start = 0
    for src in _leaf_sources(info):
        n = int(sum(src["episode_lengths"]))
        spans.setdefault(Path(src["root"]).name, []).append(torch.arange(start, start + n))
        start += n
    out = {}
    for name, parts in spans.items():
        idx = torch.cat(parts)
        out[name] = idx[torch.randperm(len(idx), generator=g)[:frames]].tolist()
    return out


def constant_uv_error(uv: torch.Tensor) -> float:
    """uv [N, P, C, 2] targets -> L1 of predicting each (point, camera)'s median in-view (u, v)."""
    from vla.heads.grounding import TargetPointers

    seen = (uv.abs() <= 1.0).all(-1, keepdim=True)  # [N, P, C, 1]
    med = torch.where(seen, uv, torch.nan).nanmedian(dim=0).values.nan_to_num(0.0)  # [P, C, 2]
    return float(TargetPointers.uv_loss(med.expand_as(uv), uv))


@torch.no_grad()
def probe(ckpt: str, dataset, frames: dict[str, list[int]], batch: int) -> dict[str, dict[str, float]]:
    from envs.record import PRIVILEGED_KEY
    from vla.checkpoint import load_policy

    policy = load_policy(ckpt).eval()
    rows = {}
    for task, idx in frames.items():
        sums: dict[str, float] = {}
        uvs = []
        for i in range(0, len(idx), batch):
            b = default_collate([dataset[j] for j in idx[i : i + batch]])
            _, metrics = policy(b)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx[i : i + batch])
            if PRIVILEGED_KEY in b:
                uvs.append(policy.processor.aux_targets(b[PRIVILEGED_KEY].float())["uv"])
        rows[task] = {k: v / len(idx) for k, v in sums.items()}
        if uvs:
            rows[task]["uv_const"] = constant_uv_error(torch.cat(uvs))
    return rows


def probe_setup(doc: str, frames: int) -> tuple[argparse.Namespace, object, dict[str, list[int]]]:
    """The probes' shared command line (dataset, checkpoints, frames per task, batch, seed) -> the parsed
    arguments, the dataset (action chunks of the first checkpoint's length) and the frames per task."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="merged suite dataset root")
    ap.add_argument("--repo-id", default=None, help="its repo id (default local/<dir name>)")
    ap.add_argument("--checkpoint", nargs="+", required=True)
    ap.add_argument("--frames", type=int, default=frames, help="frames per task")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from spatial_backbone.device import apply_runtime, resolve_runtime
    from vla.data import open_dataset
    from vla.train_config import DatasetConfig

    apply_runtime(resolve_runtime("cpu", "float32", "auto", 1))
    root = Path(args.dataset)
    chunk = json.loads((Path(args.checkpoint[0]) / "features.json").read_text())["chunk_size"]
    dataset = open_dataset(DatasetConfig(repo_id=args.repo_id or f"local/{root.name}", root=str(root)), chunk)
    return args, dataset, task_frames(root, args.frames, args.seed)


def main() -> None:
    args, dataset, frames = probe_setup(__doc__, 256)
    keys = ("l1", "uv_l1", "uv_const", "aux_l1")
    print(f"{'checkpoint':60s} {'task':14s} " + " ".join(f"{k:>8s}" for k in keys))
    for ckpt in args.checkpoint:
        for task, m in probe(ckpt, dataset, frames, args.batch).items():
            vals = " ".join(f"{m.get(k, float('nan')):8.3f}" for k in keys)
            print(f"{ckpt[-60:]:60s} {task:14s} {vals}")


if __name__ == "__main__":
    main()
