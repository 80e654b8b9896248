"""Supervised spatial tuning (`svla-sft`): packed-sequence SFT of a Qwen2.5-VL backbone on spatial data (VST,
arXiv 2511.05491). `config.py` (typed config), `packing.py` (encoding, packing plan, collator with per-item
M-RoPE), `train.py` (the loop), `cli.py` (the hydra entry point). See docs/sft.md."""
