"""Spatial evaluation: answer parsing (`parse`), scores and chance levels (`metrics`), batched generation and
per-skill results (`evaluate.evaluate_backbone`), and the `svla-spatial-eval` entry point (`cli`)."""
