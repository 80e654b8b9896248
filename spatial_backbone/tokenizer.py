"""A small byte-level BPE tokenizer for the tiny backbones, wrapped in transformers' `Qwen2Tokenizer`.

Design:
- Qwen's 151k vocabulary would dominate a 1M-parameter model (fwd+bwd ~300-500 ms vs ~15-19 ms with a few
  hundred tokens, DESIGN.md section 6), so tiny presets train their own BPE on `corpus.corpus_lines()` with
  the same pre-tokenizer as Qwen2 (its split regex + byte-level), so any string still encodes (256 byte
  symbols).
- Every Qwen2.5 special token is added, so the real `Qwen2_5_VLProcessor` and chat template work unchanged.
- Training is deterministic: the same corpus and vocabulary size give the same vocabulary and merges (tested).
"""

from __future__ import annotations

import json

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import AddedToken, Qwen2Tokenizer

from spatial_backbone.corpus import corpus_lines

# Same regex as transformers' Qwen2Tokenizer (PRETOKENIZE_REGEX), imported to stay in sync with it.
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX  # isort: skip

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _bpe_skeleton() -> Tokenizer:
    tok = Tokenizer(
        BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(vocab_size: int = 512, n_random: int = 3000, seed: int = 0) -> Qwen2Tokenizer:
    """Train the byte-level BPE on the project corpus and wrap it as a `Qwen2Tokenizer` with Qwen's specials.

    `vocab_size` counts the BPE vocabulary (256 byte symbols + merges); special tokens come after it.
    """
    if vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size} is too small: 256 byte symbols need at least ~300 entries")
    tok = _bpe_skeleton()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(list(corpus_lines(n_random=n_random, seed=seed)), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    qwen = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    qwen.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS
            ]
        }
    )
    qwen.model_max_length = 4096
    return qwen
