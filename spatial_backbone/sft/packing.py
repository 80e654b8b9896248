"""Sequence packing for Qwen2.5-VL SFT: encode items once, pack several per row, collate with per-item M-RoPE.

Design (VST, arXiv 2511.05491, trains on packed sequences; this is our own implementation):
- `encode_items` turns dataset items into token ids once: the prompt is the item's own conversation (system
  prompt if any, images, question) through the processor's chat template with the generation prompt, exactly
  as `evaluate_backbone` prompts it, with each `<|image_pad|>` expanded to the image's visual-token count
  (what the processor does); the answer is tokenized separately (as the model sees it when generating) and
  followed by `<|im_end|>`. Labels are the answer tokens and `<|im_end|>` (so the model learns to stop);
  every prompt and image token is -100.
- `BatchPlan` makes a deterministic batch order for (seed, epoch): items are shuffled, packed best-fit-
  decreasing within windows of `window` items into rows of at most `max_length` tokens, and the packs are
  shuffled again. Step `s` of a run always sees the same batch, so a resumed run continues the same order.
- `PackedCollator` builds a batch of rows. Packed rows pass `position_ids` of shape [4, B, S]: row 0 holds
  text positions that restart at 0 for each item (and for the tail padding), rows 1-3 the Qwen2.5-VL M-RoPE
  (temporal, height, width) positions computed PER ITEM (`mrope_positions`, equal to the model's own
  `get_rope_index` on the item alone). With `attention_mask=None`, transformers 5.5 derives the packed
  segments from row 0 (`masking_utils.find_packed_sequence_indices`): sdpa/eager get a block-diagonal causal
  4D mask, flash-attention-2 gets varlen boundaries from the same positions. Padded rows (the baseline) pass a
  2D padding mask and [3, B, S] positions.
- Images are decoded from PNG at collate time and patchified in torch (`patchify`, identical to the
  processor's `pixel_values` for sizes that need no resize; the processor is used otherwise). Pixel rows are
  concatenated in the order their image tokens appear in the flattened batch, which is the order the model
  scatters visual features into the sequence.

TRL 1.16's SFTTrainer is not used for packing: it raises "Packing is not supported for vision datasets" and
"Padding-free training is yet not supported for vision datasets" (see docs/sft.md).
"""

from __future__ import annotations

import bisect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from spatial_backbone.data.io import load_image
from spatial_backbone.sft.config import ROUTING_AT, PackingConfig
from spatial_backbone.sft.grounding import Mention, item_mentions
from spatial_backbone.sft.routing import routing_targets

log = logging.getLogger(__name__)
IGNORE = -100
IMAGE_PAD = "<|image_pad|>"


@dataclass
class EncodedItem:
    """One training item as token ids: `input_ids` = prompt + answer + <|im_end|>; labels from n_prompt."""

    input_ids: np.ndarray  # [L] int32
    n_prompt: int
    images: list[str]  # absolute image paths, in prompt order
    grids: list[tuple[int, int, int]]  # (t, h, w) patch grid of each image
    skill: str
    mentions: list[Mention] = field(default_factory=list)  # named objects -> image tokens (grounding loss)
    core_at: int = -1  # index of the core answer's first token (after any reasoning); -1 = n_prompt

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_answer(self) -> int:
        return len(self.input_ids) - self.n_prompt


@dataclass(frozen=True)
class VisionSpec:
    """What the collator needs to know about the image processor and the model's special tokens."""

    patch: int
    merge: int
    temporal: int
    min_pixels: int
    max_pixels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float
    image_token_id: int
    pad_token_id: int

    @classmethod
    def from_processor(cls, processor) -> VisionSpec:
        ip, tok = processor.image_processor, processor.tokenizer
        size = ip.size
        return cls(
            patch=ip.patch_size,
            merge=ip.merge_size,
            temporal=ip.temporal_patch_size,
            min_pixels=int(size["shortest_edge"]),
            max_pixels=int(size["longest_edge"]),
            mean=tuple(ip.image_mean),
            std=tuple(ip.image_std),
            rescale=float(ip.rescale_factor),
            image_token_id=tok.convert_tokens_to_ids(IMAGE_PAD),
            pad_token_id=tok.pad_token_id,
        )

    def grid(self, height: int, width: int) -> tuple[int, int, int]:
        """(t, h, w) patch grid of an image of this size after the processor's resize."""
        h, w = smart_resize(height, width, self.patch * self.merge, self.min_pixels, self.max_pixels)
        return 1, h // self.patch, w // self.patch

    def n_tokens(self, grid: tuple[int, int, int]) -> int:
        return grid[0] * grid[1] * grid[2] // self.merge**2


# -- encoding ------------------------------------------------------------------------------------------------


def prompt_text(processor, item: dict[str, Any]) -> str:
    """The chat-template prompt of an item (as `evaluate_backbone` builds it), before image-pad expansion."""
    content = [{"type": "image"} for _ in item["images"]] + [{"type": "text", "text": item["question"]}]
    messages = [{"role": "user", "content": content}]
    if item.get("system"):
        messages.insert(0, {"role": "system", "content": item["system"]})
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def _expand_image_pads(text: str, counts: list[int]) -> str:
    parts = text.split(IMAGE_PAD)
    if len(parts) != len(counts) + 1:
        raise ValueError(
            f"prompt has {len(parts) - 1} {IMAGE_PAD} tokens but the item has {len(counts)} images"
        )
    out = [parts[0]]
    for n, rest in zip(counts, parts[1:], strict=True):
        out += [IMAGE_PAD * n, rest]
    return "".join(out)


def encode_items(
    processor, items: list[dict[str, Any]], root: str | Path, mentions: bool = False
) -> list[EncodedItem]:
    """Token ids of every item (prompt, answer, <|im_end|>), with image paths and patch grids. An item's
    `answer_ids`, if present, are its answer tokens as given (`rl.anchor.greedy_answers`). `mentions`: also
    find the objects each question names and the image tokens they cover (`grounding.item_mentions`)."""
    root = Path(root).resolve()
    spec = VisionSpec.from_processor(processor)
    tok = processor.tokenizer
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    sizes: dict[str, tuple[int, int, int]] = {}
    texts, grids_all = [], []
    for it in items:
        grids = []
        for rel in it["images"]:
            if rel not in sizes:
                with Image.open(root / rel) as im:  # reads the header only
                    sizes[rel] = spec.grid(im.height, im.width)
            grids.append(sizes[rel])
        grids_all.append(grids)
        texts.append(_expand_image_pads(prompt_text(processor, it), [spec.n_tokens(g) for g in grids]))
    encoded = tok(texts, add_special_tokens=False, return_offsets_mapping=mentions)
    prompts = encoded["input_ids"]
    answer_enc = tok(
        [it["answer"] for it in items], add_special_tokens=False, return_offsets_mapping=mentions
    )
    answers = answer_enc["input_ids"]
    answers = [
        list(it["answer_ids"]) if "answer_ids" in it else a for it, a in zip(items, answers, strict=True)
    ]
    fovy = dataset_fovy(root) if mentions else 0.0
    out = []
    for i, (it, p, a, grids) in enumerate(zip(items, prompts, answers, grids_all, strict=True)):
        ids = np.asarray(p + a + [end_id], dtype=np.int32)
        paths = [str(root / rel) for rel in it["images"]]
        found, core_at = [], -1
        if mentions:
            start = texts[i].rfind(it["question"])
            offsets = encoded["offset_mapping"][i]
            found = item_mentions(it, start, offsets, grids, spec.merge, spec.patch, fovy)
            if "answer_ids" not in it:
                core_at = len(p) + core_answer_token(it, answer_enc["offset_mapping"][i])
        out.append(EncodedItem(ids, len(p), paths, grids, it["skill"], found, core_at))
    return out


def core_answer_token(item: dict[str, Any], offsets: list[tuple[int, int]]) -> int:
    """Index, among an item's answer tokens, of the first token of its core answer: the last occurrence of
    `core_answer` in `answer` (after `</think>`, inside `<answer>` or `\\boxed{}`); 0 when the answer is the
    core answer itself or does not contain it. `offsets`: the answer tokens' character spans."""
    core = str(item.get("core_answer") or "").strip()
    at = item["answer"].rfind(core) if core else -1
    if at <= 0:
        return 0
    return next((j for j, (_, end) in enumerate(offsets) if end > at), 0)


def dataset_fovy(root: Path) -> float:
    """The camera field of view a spatial dataset was rendered with (its manifest's config), in degrees."""
    manifest = root / "manifest.json"
    try:
        return float(json.loads(manifest.read_text())["config"]["camera"]["fovy"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{manifest}: cannot read config.camera.fovy ({e!r}); the grounding loss needs the dataset's "
            "camera field of view: regenerate the dataset with svla-spatial-data"
        ) from e


# -- positions -----------------------------------------------------------------------------------------------


def mrope_positions(item: EncodedItem, spec: VisionSpec) -> torch.Tensor:
    """[3, L] Qwen2.5-VL M-RoPE positions of one item alone: text tokens count up on all three axes; an image
    of (t, h, w) patches gets (start, start + row, start + col) over its merged grid, and the text after it
    continues at start + max(h, w) / merge (as `Qwen2_5_VLModel.get_rope_index` for still images)."""
    ids = torch.from_numpy(item.input_ids.astype(np.int64))  # [L]
    is_img = (ids == spec.image_token_id).numpy()
    pieces, cur, i = [], 0, 0
    for t, h, w in item.grids:
        j = i + int(np.argmax(is_img[i:]))  # first image token of this image
        if not is_img[j]:
            raise ValueError(f"item has fewer image-token runs than its {len(item.grids)} images")
        pieces.append(torch.arange(cur, cur + j - i).expand(3, -1))  # text before the image
        cur += j - i
        gh, gw = h // spec.merge, w // spec.merge
        rows = torch.arange(gh).repeat_interleave(gw).repeat(t)  # [t * gh * gw]
        cols = torch.arange(gw).repeat(gh * t)
        pieces.append(torch.stack([torch.zeros_like(rows), rows, cols]) + cur)
        cur += max(gh, gw)
        i = j + t * gh * gw
    pieces.append(torch.arange(cur, cur + len(ids) - i).expand(3, -1))  # text after the last image
    pos = torch.cat(pieces, dim=1)  # [3, L]
    if pos.shape[1] != len(ids):
        raise ValueError(
            f"positions cover {pos.shape[1]} of {len(ids)} tokens: image tokens and grids disagree"
        )
    return pos


# -- packing plan --------------------------------------------------------------------------------------------


def best_fit_decreasing(lengths: list[int], max_length: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= max_length, best fit in decreasing length order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining space, bin index)
    for i in order:
        n = lengths[i]
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (max_length - n, len(bins) - 1))
    return bins


def epoch_items(weights: list[float], rng: np.random.Generator) -> list[int]:
    """Item indices of one epoch: weight w repeats an item floor(w) times plus once with probability w % 1."""
    w = np.asarray(weights, dtype=np.float64)
    reps = np.floor(w).astype(int) + (rng.random(len(w)) < (w - np.floor(w)))
    return [int(i) for i in np.repeat(np.arange(len(w)), reps)]


def epoch_rows(
    lengths: list[int], weights: list[float], packing: PackingConfig, seed: int, epoch: int
) -> list[list[int]]:
    """Rows of item indices for one epoch: shuffled items, BFD-packed within windows (packed) or one item per
    row (padded); row order shuffled. Deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    idx = epoch_items(weights, rng)
    idx = [idx[k] for k in rng.permutation(len(idx))]
    if packing.mode == "padded":
        return [[i] for i in idx]
    rows = []
    for start in range(0, len(idx), packing.window):
        chunk = idx[start : start + packing.window]
        bins = best_fit_decreasing([lengths[i] for i in chunk], packing.max_length)
        rows += [[chunk[k] for k in b] for b in bins]
    return [rows[k] for k in rng.permutation(len(rows))]


class BatchPlan:
    """The run's batch order: batch `s` (0-based) is a list of rows of item indices, the same on every call.
    Items must already fit in `packing.max_length` tokens."""

    def __init__(self, lengths: list[int], weights: list[float], packing: PackingConfig, seed: int):
        too_long = [n for n in lengths if n > packing.max_length]
        if too_long:
            raise ValueError(
                f"{len(too_long)} items are longer than packing.max_length={packing.max_length} (longest "
                f"{max(too_long)} tokens): raise it or drop them first"
            )
        self.lengths, self.weights, self.packing, self.seed = lengths, weights, packing, seed
        self._epochs: list[list[list[int]]] = []

    def epoch(self, e: int) -> list[list[int]]:
        while len(self._epochs) <= e:
            k = len(self._epochs)
            self._epochs.append(epoch_rows(self.lengths, self.weights, self.packing, self.seed, k))
        return self._epochs[e]

    def batches(self, rows_per_batch: int, start: int = 0, rank: int = 0, world: int = 1):
        """Yield batches from step `start` on, forever; process `rank` of `world` takes every world-th row."""
        step, e, global_rows = 0, 0, rows_per_batch * world
        while True:
            rows = self.epoch(e)
            n = len(rows) // global_rows
            if n == 0:
                raise ValueError(f"an epoch has {len(rows)} rows, fewer than a batch of {global_rows}")
            for b in range(n):
                if step >= start:
                    yield rows[b * global_rows + rank : (b + 1) * global_rows : world]
                step += 1
            e += 1


# -- collation -----------------------------------------------------------------------------------------------


def patchify(
    images: list[np.ndarray], spec: VisionSpec, image_processor=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 HxWx3 images -> (`pixel_values` [N_patches, C*T*P*P], `image_grid_thw` [N, 3]), laid out as the
    Qwen2-VL image processor does. Sizes that need a resize go through `image_processor` (exact) if given."""
    pvs, grids = [], []
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    for img in images:
        h, w = img.shape[:2]
        t, gh, gw = spec.grid(h, w)
        if (gh * spec.patch, gw * spec.patch) != (h, w):
            if image_processor is None:
                raise ValueError(f"image of {h}x{w} px needs a resize: pass the image processor")
            out = image_processor(images=[img], return_tensors="pt")
            pvs.append(out["pixel_values"])
            grids.append(out["image_grid_thw"])
            continue
        x = torch.from_numpy(img).permute(2, 0, 1).float()  # [3, H, W]
        x = (x * spec.rescale - mean) / std
        tp, m, p = spec.temporal, spec.merge, spec.patch
        x = x.unsqueeze(0).expand(tp, 3, h, w)  # a still image fills the temporal patch
        x = x.reshape(1, tp, 3, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [1, gh/m, gw/m, m, m, 3, T, P, P]
        pvs.append(x.reshape(gh * gw, 3 * tp * p * p))
        grids.append(torch.tensor([[1, gh, gw]]))
    return torch.cat(pvs), torch.cat(grids)


class PackedCollator:
    """Rows of `EncodedItem`s -> model inputs (see the module docstring). Picklable for DataLoader workers."""

    def __init__(self, spec: VisionSpec, packed: bool = True, image_processor=None, routing_at: str = "core"):
        if routing_at not in ROUTING_AT:
            raise ValueError(f"grounding.attention_at={routing_at!r} must be one of {ROUTING_AT}")
        self.spec, self.packed, self.image_processor = spec, packed, image_processor
        self.routing_at = routing_at

    def _routing_span(self, it: EncodedItem) -> tuple[int, int]:
        """[first, end) of the item's tokens whose predicting positions are routing queries."""
        core = it.core_at if it.core_at >= 0 else it.n_prompt
        if self.routing_at == "prompt_end":
            return it.n_prompt, it.n_prompt + 1
        if self.routing_at == "answer":
            return core, max(core + 1, len(it) - 1)  # up to, not including, <|im_end|>
        return core, core + 1

    def __call__(self, rows: list[list[EncodedItem]]) -> dict[str, Any]:
        spec = self.spec
        if not self.packed and any(len(r) != 1 for r in rows):
            raise ValueError("padded batches hold one item per row")
        width = max(sum(len(it) for it in r) for r in rows)
        b = len(rows)
        input_ids = torch.full((b, width), spec.pad_token_id, dtype=torch.long)  # [B, S]
        labels = torch.full((b, width), IGNORE, dtype=torch.long)  # [B, S]
        positions = torch.zeros((4, b, width), dtype=torch.long)  # [4, B, S]: text, t, h, w
        attention = torch.zeros((b, width), dtype=torch.long)  # [B, S]
        images: list[str] = []
        grounding: list[dict[str, torch.Tensor]] = []
        routing: list[dict[str, Any]] = []  # answer-routing targets (`sft/routing.py`)
        n_answer = 0
        for r, row in enumerate(rows):
            col = 0
            for it in row:
                n = len(it)
                ids = torch.from_numpy(it.input_ids.astype(np.int64))
                if it.mentions:
                    keys = col + np.flatnonzero(it.input_ids[: it.n_prompt] == spec.image_token_id)
                    cells = [(g[1] // spec.merge, g[2] // spec.merge) for g in it.grids]
                    at, end = self._routing_span(it)
                    routing += routing_targets(it.mentions, r, col, at, torch.from_numpy(keys), cells, end)
                    for m in it.mentions:
                        positive = torch.zeros(len(keys), dtype=torch.bool)
                        positive[m.positives] = True
                        grounding.append(
                            {
                                "row": r,
                                "query": col + m.query,
                                "keys": torch.from_numpy(keys),
                                "positive": positive,
                            }
                        )
                input_ids[r, col : col + n] = ids
                labels[r, col + it.n_prompt : col + n] = ids[it.n_prompt :]
                positions[0, r, col : col + n] = torch.arange(n)  # restarts per item: packed segments
                positions[1:, r, col : col + n] = mrope_positions(it, spec)
                attention[r, col : col + n] = 1
                images += it.images
                n_answer += it.n_answer
                col += n
            positions[0, r, col:] = torch.arange(width - col)  # the tail padding is its own segment
        pixel_values, grid = patchify([load_image("/", p) for p in images], spec, self.image_processor)
        n_real = int(attention.sum())
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "labels": labels,
            "pixel_values": pixel_values,
            "image_grid_thw": grid,
            "stats": {
                "tokens": n_real,
                "slots": b * width,
                "answer_tokens": n_answer,
                "items": sum(map(len, rows)),
                "mentions": len(grounding),
            },
        }
        if grounding:
            batch["grounding"] = grounding
            batch["routing"] = routing
        if self.packed:
            batch |= {"position_ids": positions, "attention_mask": None}
        else:
            batch |= {"position_ids": positions[1:], "attention_mask": attention}
        return batch
