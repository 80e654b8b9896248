"""Can the tiny backbone's image tokens learn what object they hold when that is their only loss?

`benchmarks/object_probe.py` found the VLA's tokens blind to object attributes even with the object probe in
its loss (README, session 19). This separates capacity from competition: a fresh backbone (the policy's own,
`backbone.image_size` as given) and the object probe are trained on the object labels alone
(`vla.object_labels`, binary cross-entropy, AdamW) for `--steps` batches of 16 frames of a dataset recorded
with `privileged.objects`, then scored with `object_probe.score` on `--frames` frames per task (tokens that
hold an object). High scores here and chance in the VLA mean the other losses crowd the attributes out; chance
here means the tower cannot learn them at that resolution. `--save DIR` keeps the trained backbone, a
perception-pretrained start for `svla-train backbone.name_or_path=DIR`.

    .venv/bin/python benchmarks/vision_capacity.py --dataset /work/runs/datasets2/fresh5 --steps 1500 \
        --lr 1e-3 --image-size 112
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from benchmarks.grounding_probe import task_frames  # noqa: E402
from benchmarks.object_probe import score  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="merged suite dataset root (recorded with objects)")
    ap.add_argument("--repo-id", default=None, help="its repo id (default local/<dir name>)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--backbone", default="tiny_1m", help="preset or checkpoint path")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=60, help="scored frames per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="write the trained backbone here (backbone.name_or_path=)")
    args = ap.parse_args()

    from spatial_backbone.config import BackboneConfig
    from spatial_backbone.device import apply_runtime, resolve_runtime
    from vla.config import HeadConfig, PolicyConfig
    from vla.data import open_dataset
    from vla.object_labels import token_targets
    from vla.policy import SpatialVLAPolicy
    from vla.train import policy_stats
    from vla.train_config import DatasetConfig

    apply_runtime(resolve_runtime("cpu", "float32", "auto", 1))
    torch.manual_seed(args.seed)
    root = Path(args.dataset)
    dataset = open_dataset(DatasetConfig(repo_id=args.repo_id or f"local/{root.name}", root=str(root)), 8)
    size = args.image_size
    cfg = PolicyConfig(
        backbone=BackboneConfig(name_or_path=args.backbone, image_size=size, min_image_size=size),
        head=HeadConfig(name="l1_chunk", kwargs={"pointer_pos": True, "object_attrs": 1.0}),
    )
    policy = SpatialVLAPolicy(cfg, policy_stats(dataset))
    g = policy.head.grounding
    params = [*policy.backbone.parameters(), *g.obj_probe.parameters(), *g.pointers.mix.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr)

    def run(idx: list[int]):
        b = default_collate([dataset[j] for j in idx])
        inputs = policy._to_device(policy.processor(policy.processor.raw_from_dataset(b)))
        feats = policy._features(inputs)
        pred = {
            "obj_logits": g.obj_probe(g.pointers.mix(feats.hidden_states)),  # [B, S, K]
            "image_mask": feats.image_mask,
            "token_coords": feats.token_coords,
        }
        return g.object_loss(pred, inputs["aux"]["objects"]), pred, inputs["aux"]["objects"]

    gen, t0 = torch.Generator().manual_seed(args.seed), time.perf_counter()
    for step in range(args.steps):
        loss, _, _ = run(torch.randint(0, len(dataset), (args.batch,), generator=gen).tolist())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            took = time.perf_counter() - t0
            print(f"step {step}: bce {float(loss.detach()):.4f} ({took:.0f} s)", flush=True)
    policy.eval()
    idx = [i for v in task_frames(root, args.frames, args.seed + 1).values() for i in v]
    logits, labels = [], []
    with torch.no_grad():
        for i in range(0, len(idx), 50):
            _, pred, objs = run(idx[i : i + 50])
            lab = token_targets(objs["attrs"], objs["present"], objs["uv"], pred["token_coords"])  # [B, S, K]
            held = (lab.sum(-1) > 0) & pred["image_mask"]  # [B, S]
            logits.append(pred["obj_logits"][held])
            labels.append(lab[held])
    if args.save:  # a perception-pretrained backbone for svla-train (`backbone.name_or_path=<dir>`)
        from spatial_backbone.factory import save_backbone

        print(f"backbone written to {save_backbone(policy.backbone, policy.processor.hf, args.save)}")
    s = score(torch.cat(logits), torch.cat(labels))
    print(f"{args.backbone}, image {size} px, {args.steps} steps, lr {args.lr}: tokens holding an object")
    print("  " + "  ".join(f"{k} {h / n:.2f}" for k, (h, n) in s.items()))


if __name__ == "__main__":
    main()
