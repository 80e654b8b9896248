"""`svla-rl`: GRPO with verifiable spatial rewards on TRL's GRPOTrainer (see `grpo.py` and docs/rl.md)."""
