"""Spatial perception, reasoning and pretext data rendered from MuJoCo scenes with exact ground truth.

Modules: `sample` (the item), `templates` (questions, vocabularies; no mujoco), `formats` (answer formats),
`context` (scene + cached views), `skills/` (the skill registry, one file per family), `generate` (scene
sampling, splits, parallel writing), `io` (on-disk format and loading), `cli` (`svla-spatial-data`). Importing
this package does not import mujoco.
"""
