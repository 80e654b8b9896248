"""`svla-pipeline`: the whole mission in one command, with the tuned-vs-untuned ablation and a peer baseline.

spatial data -> SFT -> RL (GRPO) -> spatial eval of the untuned / SFT / RL backbones -> scripted
demonstrations of each task, merged -> a VLA from the tuned backbone, a VLA from the untuned one and LeRobot's
ACT (a smaller budget, see `PipelineConfig.act`) -> rollouts on the same held-out seeds -> report
(`report.md`, `report.json`, PNG plots).

Modules, one job each: `graph` (stage names and inputs), `config` (the typed config composing the stage
configs), `stage` (what a stage is), `spatial` / `robot` / `report` (the stages), `cache` (stage records,
keys, atomic writes), `runner` (run / skip / resume, progress), `plots` and `markdown` (the report's files),
`cli` (the hydra entry point). Imports flow envs <- spatial_backbone <- vla <- pipeline.
"""
