"""Where the image -> answer path of a backbone breaks, on two-object relation questions
(`relative_position_2d`: "is the blue ball above or below the green ball?", plain format).

For each item, the answer is decided at the prompt's last position (its next token starts the answer). At
the language model's last decoder layer this prints, fitted on the train split and scored on the test split:

1. routing: the attention mass query head k puts on the image tokens of the k-th named object
   (`sft.routing`, heads 0-1; what `grounding.attention_weight` trains; chance ~ covered / visible tokens);
2. object position: ridge R^2 from the mean layer input over an object's covered tokens to its image
   centroid column / row (the item's meta): is *where* in the tokens the answer attends to?
3. answer decodability: a ridge classifier (per question axis: above/below, left/right) on
   (a) the two routed heads' outputs [o_0, o_1, o_0 - o_1] (attention-weighted values, before o_proj) and
   (b) the final hidden state at the answer position. Chance 0.5. If (2) is high and (3) is not, the value
   path from the object tokens to the answer is what has not been learned.

    .venv/bin/python benchmarks/answer_routing.py --data <dataset with relative_position_2d items> \
        --backbone <backbone dir | tiny_1m> [--n 1200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, not benchmarks/, shadows `envs`

import numpy as np  # noqa: E402
import torch  # noqa: E402
from token_positions import _batches, ridge_r2  # noqa: E402

from spatial_backbone.config import BackboneConfig  # noqa: E402
from spatial_backbone.data.io import load_split  # noqa: E402
from spatial_backbone.factory import build_backbone  # noqa: E402
from spatial_backbone.sft.packing import encode_items  # noqa: E402
from spatial_backbone.sft.routing import AttentionTap  # noqa: E402

SKILL = "relative_position_2d"


def features(model, processor, data: str, split: str, n: int) -> dict[str, np.ndarray]:
    """Per item naming two objects: routing masses [2], object states [2, D] and centroids [2, 2], routed
    head outputs [3 * head_dim], final answer-position state [D], axis (1 = above/below) and label."""
    items = [it for it in load_split(data, split) if it["skill"] == SKILL and it["format"] == "plain"][:n]
    enc = encode_items(processor, items, data, mentions=True)
    keep = [(it, e) for it, e in zip(items, enc, strict=True) if len({m.obj for m in e.mentions}) == 2]
    if not keep:
        raise ValueError(f"{data}/{split}: no plain {SKILL} items naming two objects")
    tap = AttentionTap(model, -1)
    rows: dict[str, list] = {k: [] for k in ("mass", "obj", "centroid", "heads", "final", "axis", "label")}
    done = 0
    for e_chunk, batch, out in _batches(model, processor, [e for _, e in keep]):
        by_row: dict[int, dict[int, dict]] = {}
        for t in batch["routing"]:
            by_row.setdefault(t["row"], {})[t["head"]] = t
        with torch.no_grad():
            layer_in = out.hidden_states[tap.layer]  # [B, S, D]
            for r, e in enumerate(e_chunk):
                it = keep[done + r][0]
                ts = [by_row[r][k] for k in (0, 1)]
                meta = json.loads(it["meta"]) if isinstance(it["meta"], str) else it["meta"]
                heads = []
                for k, (t, (p, o)) in enumerate(zip(ts, tap.attend(ts), strict=True)):
                    cols = t["keys"][t["positive"]]
                    rows["mass"].append(float(p[cols - t["start"]].sum()))
                    rows["obj"].append(layer_in[r, cols].mean(0).numpy())
                    rows["centroid"].append(meta["centroids"][k])
                    heads.append(o.numpy())  # the head's output over the values [head_dim]
                rows["heads"].append(np.concatenate([heads[0], heads[1], heads[0] - heads[1]]))
                rows["final"].append(out.last_hidden_state[r, e.n_prompt - 1].numpy())
                rows["axis"].append("above" in it["question"])
                rows["label"].append(it["core_answer"] in ("above", "left"))
        done += len(e_chunk)
    tap.remove()
    return {k: np.asarray(v) for k, v in rows.items()}


def _standardize(tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m, s = tr.mean(0), tr.std(0) + 1e-6
    return (tr - m) / s, (te - m) / s


def classify(x_tr, y_tr, x_te, y_te, lam: float = 10.0) -> float:
    """Held-out accuracy of a ridge classifier on +-1 labels (standardized features)."""
    a, b = _standardize(x_tr, x_te)
    t = np.where(y_tr, 1.0, -1.0)
    a1 = np.c_[a, np.ones(len(a))]
    w = np.linalg.solve(a1.T @ a1 + lam * np.eye(a1.shape[1]), a1.T @ t)
    return float(np.mean((np.c_[b, np.ones(len(b))] @ w > 0) == y_te))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--backbone", default="tiny_1m")
    p.add_argument("--n", type=int, default=1200, help="items per split (before filtering)")
    args = p.parse_args()
    model, processor = build_backbone(BackboneConfig(name_or_path=args.backbone))
    model.eval()
    tr, te = (features(model, processor, args.data, s, args.n) for s in ("train", "test"))
    print(f"{args.backbone}: {len(tr['label'])} train / {len(te['label'])} test items naming two objects")
    mass = f"train {tr['mass'].mean():.3f}, test {te['mass'].mean():.3f}"
    print(f"routing mass on the named objects (heads 0-1): {mass}")
    a, b = _standardize(tr["obj"], te["obj"])
    r2 = ridge_r2(a, tr["centroid"], b, te["centroid"], lam=10.0)
    print(f"object tokens -> image centroid R^2: column {r2[0]:.3f}, row {r2[1]:.3f}")
    for key, what in (("heads", "routed heads' outputs"), ("final", "final answer-position state")):
        accs = []
        for axis, name in ((True, "above/below"), (False, "left/right")):
            i, j = tr["axis"] == axis, te["axis"] == axis
            accs.append(f"{name} {classify(tr[key][i], tr['label'][i], te[key][j], te['label'][j]):.3f}")
        print(f"answer decodable from the {what}: {', '.join(accs)} (chance 0.5)")


if __name__ == "__main__":
    main()
