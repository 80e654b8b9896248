"""What do the image tokens say about the objects? Accuracy of a checkpoint's object probe, per attribute.

For a policy trained with `head.kwargs.object_attrs` (`vla/object_labels.py`), reads the probe on the tokens
the pointers read, for `--frames` frames per task of a merged dataset recorded with `privileged.objects`, and
scores it on the tokens that hold an object (the nearest token to an object's centre, as in training):
`shape` / `color` / `size` are the share of those tokens whose most likely value is one of the objects there;
each relation flag (leftmost, ..., smallest) is reported as balanced accuracy (mean of the recall on tokens
with and without it; 0.5 = chance), the question being whether a token knows it holds "the leftmost cube".
With `attr_match`, `wish_*` are the same scores for the pointer queries' wished-for attributes against the
target object's (the language side: does the query know it looks for a cube, the leftmost one?).

    .venv/bin/python benchmarks/object_probe.py --dataset /work/runs/datasets2/fresh5p5000 \
        --checkpoint /work/runs/vla/p5k_obj20k/checkpoints/step_0004000 [more checkpoints]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from benchmarks.grounding_probe import probe_setup  # noqa: E402


def group_slices() -> dict[str, slice]:
    from envs.scene import COLORS, SHAPES, SIZES

    a, b = len(SHAPES), len(SHAPES) + len(COLORS)
    return {"shape": slice(0, a), "color": slice(a, b), "size": slice(b, b + len(SIZES))}


def score(logits: torch.Tensor, labels: torch.Tensor, prefix: str = "") -> dict[str, tuple[float, float]]:
    """logits, labels [N, K] -> {name: (hits, count)}: top-1 within each group, balanced accuracy per flag."""
    from vla.object_labels import ATTRIBUTE_NAMES, RELATION_FLAGS

    out = {}
    for name, sl in group_slices().items():
        top = logits[:, sl].argmax(-1, keepdim=True)  # [N, 1]
        out[prefix + name] = (float(labels[:, sl].gather(1, top).sum()), float(len(labels)))
    for flag in RELATION_FLAGS:
        k = ATTRIBUTE_NAMES.index(flag)
        pos, pred = labels[:, k] > 0.5, logits[:, k] > 0
        rec_pos = float((pred & pos).sum()) / max(1, int(pos.sum()))
        rec_neg = float((~pred & ~pos).sum()) / max(1, int((~pos).sum()))
        out[prefix + flag] = ((rec_pos + rec_neg) / 2 * len(labels), float(len(labels)))
    return out


@torch.no_grad()
def probe(ckpt: str, dataset, frames: dict[str, list[int]], batch: int) -> dict[str, dict[str, float]]:
    from vla.checkpoint import load_policy
    from vla.object_labels import token_targets

    policy = load_policy(ckpt).eval()
    g = policy.head.grounding
    if g is None or g.obj_probe is None:
        raise SystemExit(f"{ckpt} has no object probe (train with head.kwargs.object_attrs > 0)")
    rows = {}
    for task, idx in frames.items():
        logits, labels, wish, wish_lab = [], [], [], []
        for i in range(0, len(idx), batch):
            b = default_collate([dataset[j] for j in idx[i : i + batch]])
            inputs = policy._to_device(policy.processor(policy.processor.raw_from_dataset(b)))
            objs = inputs["aux"]["objects"]
            feats = policy._features(inputs)
            lg = g.probe_tokens(feats)["obj_logits"]  # [B, S, K]
            lab = token_targets(objs["attrs"], objs["present"], objs["uv"], feats.token_coords)  # [B, S, K]
            held = (lab.sum(-1) > 0) & feats.image_mask  # [B, S]
            logits.append(lg[held])
            labels.append(lab[held])
            if g.attr_match:
                q0 = policy.head.mix(feats.queries)[:, 0]  # [B, D] the grounding query, as the head builds it
                _, _, q_attrs = g.pointers(q0, feats, lg.sigmoid())  # [B, P, K]
                has = objs["point_has"][:, 0]  # [B] the target is an object
                wish.append(q_attrs[:, 0][has])
                wish_lab.append(objs["point_attrs"][:, 0][has])
        sums = score(torch.cat(logits), torch.cat(labels))
        if wish:
            sums |= score(torch.cat(wish), torch.cat(wish_lab), "wish_")
        rows[task] = {k: h / max(n, 1.0) for k, (h, n) in sums.items()}
    return rows


def main() -> None:
    from vla.object_labels import RELATION_FLAGS

    args, dataset, frames = probe_setup(__doc__, 128)
    keys = [*group_slices(), *RELATION_FLAGS]
    for ckpt in args.checkpoint:
        print(ckpt)
        rows = probe(ckpt, dataset, frames, args.batch)
        wish = any(k.startswith("wish_") for m in rows.values() for k in m)
        for prefix in ["", "wish_"] if wish else [""]:
            print(f"  {'task':14s} " + " ".join(f"{prefix + k:>14s}"[-14:] for k in keys))
            for task, m in rows.items():
                print(f"  {task:14s} " + " ".join(f"{m[prefix + k]:14.2f}" for k in keys))


if __name__ == "__main__":
    main()
