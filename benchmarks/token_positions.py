"""What a backbone's language-model image tokens know about *where* they are, and (for a run trained with
`grounding.weight > 0`) whether its word-region head finds named objects on held-out scenes.

1. Position probe: ridge regression from each image token's hidden state (language-model input = layer 0,
   and after every decoder layer) to its own normalized (row, col) in the token grid, fitted on single-image
   items of the train split and scored (R^2) on the test split. Qwen2.5-VL's positions are rotary (relative):
   they never enter the values, so a token knows its place only from what it shows (or from
   `backbone.abs_pos=true`).
2. With `--run <svla-sft output_dir>` whose checkpoints hold a grounding head: for every object named in a
   test question (`sft.grounding.item_mentions`), is the image token its head scores highest one that the
   object covers? Prints the hit rate and the chance rate (covered tokens / all tokens of the item).
3. With `--binding`: the same question for any backbone, frozen: a fresh query/key head is fitted on the
   layer-1 hidden states of train mentions (1500 steps of 32) and scored on test mentions, so untuned, plain
   SFT and grounded backbones compare on equal terms.

    .venv/bin/python benchmarks/token_positions.py --data /work/runs/datasets/spatial --backbone <dir|tiny_1m>
    .venv/bin/python benchmarks/token_positions.py --data <D> --run /work/runs/sft_g3  # both, last checkpoint
    .venv/bin/python benchmarks/token_positions.py --data <D> --backbone <dir> --binding
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spatial_backbone.config import BackboneConfig  # noqa: E402
from spatial_backbone.data.io import load_split  # noqa: E402
from spatial_backbone.factory import build_backbone  # noqa: E402
from spatial_backbone.sft.answers import answer_forward  # noqa: E402
from spatial_backbone.sft.grounding import GroundingHead  # noqa: E402
from spatial_backbone.sft.packing import PackedCollator, VisionSpec, encode_items  # noqa: E402
from spatial_backbone.training_state import STATE_FILE  # noqa: E402


def _batches(model, processor, enc, size: int = 8):
    collate = PackedCollator(VisionSpec.from_processor(processor), True, processor.image_processor)
    with torch.no_grad():
        for i in range(0, len(enc), size):
            batch = collate([[e] for e in enc[i : i + size]])
            out = model.model(
                input_ids=batch["input_ids"],
                attention_mask=None,
                position_ids=batch["position_ids"],
                pixel_values=batch["pixel_values"],
                image_grid_thw=batch["image_grid_thw"],
                use_cache=False,
                output_hidden_states=True,
            )
            yield enc[i : i + size], batch, out


def token_features(model, processor, data: str, split: str, n: int):
    """Hidden states of every image token of `n` single-image items, per layer, and its (row, col) in
    [0, 1]."""
    items = [it for it in load_split(data, split) if len(it["images"]) == 1][:n]
    enc = encode_items(processor, items, data)
    image_id = VisionSpec.from_processor(processor).image_token_id
    feats: dict[int, list] = {}
    where = []
    for chunk, batch, out in _batches(model, processor, enc):
        mask = batch["input_ids"] == image_id  # [B, S]
        for layer, h in enumerate(out.hidden_states):
            feats.setdefault(layer, []).append(h[mask])
        for e in chunk:
            rows, cols = e.grids[0][1] // 2, e.grids[0][2] // 2
            where += [(r / (rows - 1), c / (cols - 1)) for r in range(rows) for c in range(cols)]
    return {k: torch.cat(v).numpy() for k, v in feats.items()}, np.asarray(where)


def ridge_r2(x_tr, y_tr, x_te, y_te, lam: float = 1e-2) -> np.ndarray:
    a = np.c_[x_tr, np.ones(len(x_tr))]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y_tr)
    pred = np.c_[x_te, np.ones(len(x_te))] @ w
    return 1 - ((pred - y_te) ** 2).sum(0) / ((y_te - y_te.mean(0)) ** 2).sum(0)


def grounding_hits(run: Path, data: str, split: str, n: int) -> tuple[int, float, float]:
    """(mentions, head top-1 hit rate, chance rate) of the last checkpoint of a grounded SFT run."""
    ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
    model, processor = build_backbone(BackboneConfig(name_or_path=str(ckpt)))
    state = torch.load(ckpt / STATE_FILE, weights_only=False)
    if "grounding_head" not in state:
        raise SystemExit(f"{ckpt} holds no grounding head: was the run trained with grounding.weight > 0?")
    head = GroundingHead(
        model.config.text_config.hidden_size, state["grounding_head"]["query.weight"].shape[0]
    )
    head.load_state_dict(state["grounding_head"])
    mentions = _mention_states(model, processor, data, split, n, int(state.get("grounding_layer", 1)))
    return len(mentions), *_hits(head, mentions)


def _hits(head: GroundingHead, mentions: list[tuple]) -> tuple[float, float]:
    """Share of mentions whose top-scored image token the object covers, and the chance share."""
    with torch.no_grad():
        hits = [bool(pos[head.scores(q, k).argmax()]) for q, k, pos in mentions]
    return sum(hits) / len(hits), sum(float(pos.float().mean()) for _, _, pos in mentions) / len(mentions)


def _mention_states(model, processor, data: str, split: str, n: int, layer: int = 1) -> list[tuple]:
    """(query state [D], image-token states [K, D], positive mask [K]) of up to `n` items' mentions."""
    enc = [e for e in encode_items(processor, load_split(data, split), data, mentions=True) if e.mentions][:n]
    collate = PackedCollator(VisionSpec.from_processor(processor), True, processor.image_processor)
    out = []
    with torch.no_grad():
        for i in range(0, len(enc), 8):
            batch = collate([[e] for e in enc[i : i + 8]])
            _, _, hidden = answer_forward(model, batch, layer)  # [B, S, D]
            for t in batch["grounding"]:
                out.append((hidden[t["row"], t["query"]], hidden[t["row"], t["keys"]], t["positive"]))
    return out


def frozen_binding(model, processor, data: str, steps: int = 1500) -> tuple[float, float]:
    """Top-1 hit rate on test mentions of a head fitted on the frozen backbone's train mentions; chance."""
    train, test = (
        _mention_states(model, processor, data, "train", 2000),
        _mention_states(model, processor, data, "test", 400),
    )
    torch.manual_seed(0)
    head = GroundingHead(model.config.text_config.hidden_size, 64)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = [train[i] for i in torch.randint(len(train), (32,)).tolist()]
        loss = torch.stack([head.mention_loss(q, k, pos) for q, k, pos in batch]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _hits(head, test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a svla-spatial-data directory")
    ap.add_argument("--backbone", help="a backbone directory or tiny preset (default: the run's backbone)")
    ap.add_argument("--run", type=Path, help="a svla-sft output_dir trained with grounding.weight > 0")
    ap.add_argument("--items", type=int, default=600, help="train items for the probe (test: half)")
    ap.add_argument("--binding", action="store_true", help="also fit a frozen grounding head (part 3)")
    args = ap.parse_args()
    name = args.backbone or (str(args.run / "backbone") if args.run else "tiny_1m")
    model, processor = build_backbone(BackboneConfig(name_or_path=name))
    x_tr, y_tr = token_features(model, processor, args.data, "train", args.items)
    x_te, y_te = token_features(model, processor, args.data, "test", args.items // 2)
    print(f"position probe ({name}; {len(y_tr)} train / {len(y_te)} test image tokens): R^2 of row, column")
    for layer in x_tr:
        r2 = ridge_r2(x_tr[layer], y_tr, x_te[layer], y_te)
        print(f"  layer {layer}: row {r2[0]:.3f}  column {r2[1]:.3f}")
    if args.binding:
        hit, chance = frozen_binding(model, processor, args.data)
        print(
            f"frozen backbone, fitted head on test questions: top-1 on the object {hit:.3f} "
            f"(chance {chance:.3f})"
        )
    if args.run:
        n, hit, chance = grounding_hits(args.run, args.data, "test", 400)
        print(
            f"grounding head on test questions: {n} mentions, top-1 on the object {hit:.3f} "
            f"(chance {chance:.3f})"
        )


if __name__ == "__main__":
    main()
