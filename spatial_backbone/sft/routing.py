"""Answer-routing supervision for SFT: the answer's own attention is taught to look at the objects it names.

Why: session 24's word-region alignment loss (`sft/grounding.py`) made the tiny backbone's image tokens
findable from an object's name on held-out scenes (87.6% top-1), and `abs_pos` made a token's column
decodable, yet the answers did not change (docs/sft.md). The binding lived in a side head; nothing taught
the language model's *own* attention, at the position that writes the answer, to fetch the named objects'
tokens. Even a one-skill run (`relative_position_2d`, "is the blue ball above or below the green ball?",
5,509 items, ~5 epochs) stays at chance. Supervised attention (Qiao et al., AAAI 2018, "Exploring human-like
attention supervision in VQA"; Liu et al., 2017, for captioning) trains that routing directly; the
simulator gives its targets exactly (`grounding.item_mentions`: which image tokens each named object covers).

Design:
- Targets (`routing_targets`): in every item whose question names objects (unique labels in the scene), the
  distinct objects in order of first mention; object k is assigned query head k of the supervised layer
  (objects beyond the head count are left out). The query position is the one whose next-token prediction
  starts the *core* answer (`grounding.attention_at=core`, the default since session 26): the prompt's last
  token for a plain answer, the token before the word after `</think>`, inside `<answer>` or `\boxed{` for
  the reasoning formats (`packing.core_answer_token`). `attention_at=prompt_end` keeps session 25's choice
  (always the prompt's last token, which for a reasoning format predicts `<think>`, not the answer);
  `attention_at=answer` makes every position that predicts a token of the core answer a query (weighted so
  each object counts once): for answers that spell out a place, e.g. a JSON point, the positions writing
  the digits must read the object too.
- Loss (`AttentionTap.loss`): the supervised layer's attention is recomputed from its own inputs (captured
  by a forward pre-hook on its `self_attn`: the normed hidden states and the M-RoPE cos/sin), with its own
  q/k projections, rotary embedding, GQA head sharing and scaling, over the item's causal prefix only (what
  packing's block mask lets it see). Per target, -log of the attention mass head k puts on object k's image
  tokens; the (weighted) mean over targets is added to the answer cross-entropy
  (`grounding.attention_weight`). No new parameters: the routing is learned by the backbone itself and ships
  with it.
- Optional value term (`grounding.value_weight`): the routed head's output (its attention over the values,
  before `o_proj`) must carry where the object is: its first two channels regress the object's (row, col) in
  the image (the mean centre of its covered token cells, in [0, 1]); a fixed readout, again no parameters.
  Why: session 25 found routing alone reaches the objects (attention mass 0.04 -> 0.65) while their
  position, linearly decodable from the tokens (R^2 0.6-0.7), is mostly lost in the values (0.27-0.51).
- Tested against the model's own eager attention weights (`tests/test_sft_routing.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_multimodal_rotary_pos_emb

from spatial_backbone.sft.grounding import Mention


def object_place(positives: list[int], cells: list[tuple[int, int]]) -> torch.Tensor:
    """(row, col) in [0, 1] of an object in the first image it covers: the mean centre of its covered token
    cells there. `cells`: (rows, cols) of each image's merged token grid, in prompt order."""
    first = 0
    for rows, cols in cells:
        mine = [i - first for i in positives if first <= i < first + rows * cols]
        if mine:
            rc = torch.tensor([[(i // cols + 0.5) / rows, (i % cols + 0.5) / cols] for i in mine])
            return rc.mean(0)
        first += rows * cols
    raise ValueError(f"positives {positives} fall in no image of grids {cells}")


def routing_targets(
    mentions: list[Mention],
    row: int,
    start: int,
    answer_at: int,
    keys: torch.Tensor,
    cells: list[tuple[int, int]],
    answer_end: int | None = None,
) -> list[dict[str, Any]]:
    """One item's routing targets (module docstring). `start`: the item's first column in its packed row;
    `answer_at`: the index, within the item, of the token the (first) query position predicts (the core
    answer's first); `keys`: the row columns of its image tokens (prompt order), which `Mention.positives`
    index; `cells`: each image's merged token grid (rows, cols). `answer_end` (exclusive, default
    `answer_at + 1`): with a span, every position predicting a token in [answer_at, answer_end) is a query,
    one target each, weighted 1 / span so that every object counts once."""
    end = answer_at + 1 if answer_end is None else answer_end
    if end <= answer_at:
        raise ValueError(f"empty routing span [{answer_at}, {end})")
    out, seen, head = [], set(), 0
    for m in sorted(mentions, key=lambda m: m.query):  # order of first mention in the question
        if m.obj in seen:
            continue
        seen.add(m.obj)
        positive = torch.zeros(len(keys), dtype=torch.bool)
        positive[m.positives] = True
        place = object_place(m.positives, cells)  # [2] (row, col) in [0, 1]
        for at in range(answer_at, end):
            out.append(
                {
                    "row": row,
                    "start": start,
                    "query": start + at - 1,
                    "keys": keys,
                    "positive": positive,
                    "head": head,
                    "place": place,
                    "weight": 1.0 / (end - answer_at),
                }
            )
        head += 1
    return out


class AttentionTap:
    """Captures one decoder layer's attention inputs during the forward pass and scores routing targets."""

    def __init__(self, backbone, layer: int):
        layers = backbone.model.language_model.layers
        n = len(layers)
        if not -n <= layer < n:
            raise ValueError(
                f"grounding.attention_layer={layer!r}: the language model has {n} decoder layers "
                f"(use 0..{n - 1}, or -1 for the last)"
            )
        self.layer = layer % n
        self.attn = layers[self.layer].self_attn
        self.inputs: dict[str, Any] = {}
        self._handle = self.attn.register_forward_pre_hook(self._capture, with_kwargs=True)

    def _capture(self, module, args, kwargs) -> None:
        self.inputs = {
            "hidden": kwargs["hidden_states"] if "hidden_states" in kwargs else args[0],  # [B, S, D]
            "rope": kwargs["position_embeddings"],  # (cos, sin), each [3, B, S, head_dim]
        }

    def remove(self) -> None:
        self._handle.remove()

    def head_probs(self, targets: list[dict[str, Any]]) -> list[torch.Tensor]:
        """Each target's attention distribution [query - start + 1] (query head `head`, over the item's causal
        prefix), recomputed from the last captured forward exactly as the layer computes it."""
        return [p for p, _ in self.attend(targets)]

    def attend(self, targets: list[dict[str, Any]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per target: (attention distribution [L], the head's output [head_dim] = that distribution over the
        prefix's values, before `o_proj`)."""
        if not self.inputs:
            raise RuntimeError("no forward pass captured yet: run the backbone first")
        attn, hidden = self.attn, self.inputs["hidden"]
        cos, sin = self.inputs["rope"]
        b, s, _ = hidden.shape
        hd = attn.head_dim
        q = attn.q_proj(hidden).view(b, s, -1, hd).transpose(1, 2)  # [B, Hq, S, hd]
        k = attn.k_proj(hidden).view(b, s, -1, hd).transpose(1, 2)  # [B, Hkv, S, hd]
        v = attn.v_proj(hidden).view(b, s, -1, hd).transpose(1, 2)  # [B, Hkv, S, hd]
        q, k = apply_multimodal_rotary_pos_emb(q, k, cos, sin, attn.config.rope_parameters["mrope_section"])
        groups = q.shape[1] // k.shape[1]  # GQA: query head h reads key/value head h // groups
        out = []
        for t in targets:
            r, h, lo, hi = t["row"], t["head"], t["start"], t["query"] + 1
            logits = k[r, h // groups, lo:hi].float() @ q[r, h, t["query"]].float() * attn.scaling  # [L]
            p = torch.softmax(logits, dim=0)
            out.append((p, p @ v[r, h // groups, lo:hi].float()))  # [L], [hd]
        return out

    def loss(self, targets: list[dict[str, Any]], value: bool = False) -> dict[str, torch.Tensor]:
        """{"routing": mean over targets of -log(attention mass on the object's image tokens)} and, with
        `value`, {"routing_value": mean squared error between the first two channels of the head's output
        and the object's (row, col) in [0, 1]} (a fixed, parameter-free readout: the values must carry
        where the attended object is). Targets whose head does not exist in the layer are skipped; each
        term is 0 when none is left."""
        heads = self.attn.config.num_attention_heads
        targets = [t for t in targets if t["head"] < heads]
        if not targets:
            zero = self.inputs["hidden"].sum() * 0.0
            return {"routing": zero} | ({"routing_value": zero} if value else {})
        routing, err = [], []
        for t, (p, o) in zip(targets, self.attend(targets), strict=True):
            cols = t["keys"][t["positive"]] - t["start"]  # image-token columns within the item
            routing.append(-torch.log(p[cols].sum().clamp_min(1e-12)))
            err.append(((o[:2] - t["place"].to(o)) ** 2).mean())
        w = torch.tensor([t.get("weight", 1.0) for t in targets], device=routing[0].device)  # [T]
        w = w / w.sum()
        out = {"routing": (torch.stack(routing) * w).sum()}
        return out | ({"routing_value": (torch.stack(err) * w).sum()} if value else {})
