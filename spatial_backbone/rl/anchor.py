"""Anchor loss for GRPO: hold the skills GRPO does not train where the starting (SFT) model left them.

Why (docs/rl.md, session 4): every GRPO run on a subset of skills gained 1-3 points on that subset and dropped
some untrained skill by 7-17 points. The tiny SFT model answers most items of a skill with one constant text,
and the small weight changes GRPO makes flip that answer. GRPO's own KL term only covers the prompts it
samples, so nothing holds the other skills. The remedy follows InstructGPT's PPO-ptx (Ouyang et al. 2022,
which mixes pretraining gradients into PPO against the "alignment tax"), in the distillation form: every GRPO
step adds `coef * KL(ref || policy)` over the answer tokens of `per_step` items of the untrained skills. The
answers are teacher-forced reference answers; `ref` is GRPO's KL reference (the starting model). The first
answer token's distribution, which decides a constant answer, depends on the prompt alone, so it is pinned
directly; the item order is a pure function of (seed, step), so a resumed run sees the same anchors.

The anchor covers everything GRPO does not train: the untrained skills in every answer format, and the trained
skills in the formats GRPO does not sample. Session 6 found why this matters: with the anchor drawn from
GRPO's own format list (`plain`), depth_ordering (whose items are all `boxed`) was never anchored, and it lost
16.7 points in 4 of 6 runs: GRPO on the distance skills moved the "0.xx m" numbers the model writes in its
chain of thought, and the derived order became an invalid permutation.

Which answers are teacher-forced (`grpo.anchor_answers`): `dataset` forces the items' reference answers;
`greedy` forces the starting model's own greedy completions, generated once before training with the
evaluation's prompts and decoding (`evaluation.evaluate.generate_ids`), so the KL is measured on the very
token paths the greedy evaluation takes. Session 7 found why this matters: with dataset answers the anchor KL
stayed at ~1e-4 while relative_position_3d's `think` items flipped from "yes" to "no" (-14.6 points): the
chain of thought the model writes is not the reference chain, and the drift happened on the model's own path.

Why a margin term (`grpo.anchor_margin_coef`): the greedy evaluation changes only where an argmax flips,
and the KL is second order in a small drift, so it barely resists the small moves that flip a near-tie.
Session 7's remaining failure is such a flip: closest_object's chain-of-thought items end a ~190-token
answer with one deciding letter ("B" -> "A" in every seed-1 run). `margin_drop` is first order: at each
forced token y, how far the policy's log-probability margin of y over the best other token,
z_y - max_{v != y} z_v, fell below the reference's, relu(m_ref - m_policy), averaged over the answer tokens.
It is 0 at the start and wherever the margin grew, so it never sharpens the model beyond its starting
point; with greedy answers y is the start model's argmax, so it holds exactly the greedy choices.
Measured (docs/rl.md session 8): at coefficient 10 it lowered the trained skills' gain and did not reduce
the drops, so it stays off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spatial_backbone.data.io import load_split
from spatial_backbone.evaluation.evaluate import EvalOptions, generate_ids
from spatial_backbone.rl.config import ANCHOR_ANSWERS
from spatial_backbone.sft.answers import answer_logits
from spatial_backbone.sft.packing import EncodedItem, PackedCollator, VisionSpec, encode_items


def forced_margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N]: logit of each forced token minus the largest other logit (> 0 where the target is the argmax)."""
    forced = logits.gather(1, targets[:, None]).squeeze(1)  # [N]
    top = logits.topk(2, dim=-1)  # [N, 2]: no [N, V] copy (a real vocabulary is 151k wide)
    best_other = torch.where(top.indices[:, 0] == targets, top.values[:, 1], top.values[:, 0])  # [N]
    return forced - best_other


def anchor_losses(policy, ref, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Means over the answer tokens (teacher forcing) of KL(ref || policy) of the next-token distributions
    and of the margin drop relu(m_ref - m_policy) of the forced tokens (module docstring)."""
    logits, targets = answer_logits(policy, batch)  # [N, V], [N]
    with torch.no_grad():
        ref_logits, _ = answer_logits(ref, batch)  # [N, V]
    kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(ref_logits, -1), log_target=True, reduction="none")
    drop = F.relu(forced_margin(ref_logits, targets) - forced_margin(logits, targets))  # [N]
    return kl.sum(-1).mean(), drop.mean()


@torch.no_grad()
def greedy_answers(model, processor, items: list[dict[str, Any]], data_dir: str) -> list[dict[str, Any]]:
    """Copies of `items` with `answer_ids`: `model`'s greedy completion up to its end of turn, generated as
    the evaluation generates (same prompt, greedy, same token cap; batches of the evaluation's size). Token
    ids, not decoded text: text does not always re-encode to the same tokens."""
    opts = EvalOptions()
    tok = processor.tokenizer
    eos = model.generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) | {tok.pad_token_id}
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(items), opts.batch_size):
            batch = items[i : i + opts.batch_size]
            ids = generate_ids(model, processor, batch, Path(data_dir), opts.max_new_tokens)  # [B, T]
            for it, row in zip(batch, ids.tolist(), strict=True):
                end = next((j for j, t in enumerate(row) if t in stop), len(row))
                out.append({**it, "answer_ids": row[:end]})
        return out
    finally:
        model.train(was_training)


def trained_by_grpo(item: dict[str, Any], skills: list[str], formats: list[str]) -> bool:
    """The skill and format half of GRPO's data filter (each empty = every skill / format). GRPO's
    `select_items` adds reward, answer-type and length filters; the anchor holds every item this rejects."""
    return (not skills or item["skill"] in skills) and (not formats or item["format"] in formats)


class AnchorItems:
    """Items GRPO does not train (eval-style prompts), and a seeded batch for each step.

    An item is an anchor unless its skill is in `trained_skills` and its format in `trained_formats` (each
    empty = every skill / format, as in GRPO's data filter): untrained skills are held in every format,
    trained skills in the formats GRPO never samples. `answers="greedy"` replaces each item's answer by
    `model`'s greedy completion (the starting model; see the module docstring).
    """

    def __init__(
        self,
        processor,
        data_dir: str,
        split: str,
        trained_skills: list[str],
        per_step: int,
        pool: int,
        seed: int,
        trained_formats: list[str],
        answers: str = "dataset",
        model=None,
    ):
        if answers not in ANCHOR_ANSWERS:
            raise ValueError(f"grpo.anchor_answers={answers!r} must be one of {ANCHOR_ANSWERS}")
        if answers == "greedy" and model is None:
            raise ValueError("anchor answers 'greedy' need the starting model to generate them")
        items = [
            it
            for it in load_split(data_dir, split)
            if not trained_by_grpo(it, trained_skills, trained_formats)
        ]
        if not items:
            raise ValueError(
                f"no anchor items: every item of split {split!r} of {data_dir} is trained by GRPO "
                f"(skills {sorted(trained_skills) or 'all'}, formats {trained_formats or 'all'}); "
                "set grpo.anchor_coef=0"
            )
        rng = np.random.default_rng(seed)
        chosen = [items[i] for i in sorted(rng.permutation(len(items))[:pool].tolist())]
        if answers == "greedy":
            chosen = greedy_answers(model, processor, chosen, data_dir)
        self.items: list[EncodedItem] = encode_items(processor, chosen, data_dir)
        self.skills = sorted({it.skill for it in self.items})
        self.collate = PackedCollator(VisionSpec.from_processor(processor), packed=False)
        self.per_step, self.seed = min(per_step, len(self.items)), seed

    def batch(self, step: int) -> dict[str, Any]:
        """The anchors of optimizer step `step`: a pure function of (seed, step)."""
        idx = np.random.default_rng([self.seed, step]).choice(len(self.items), self.per_step, replace=False)
        return self.collate([[self.items[i]] for i in sorted(idx.tolist())])
