"""Peer baselines: other labs' policies trained on our datasets with our loop and evaluated by `svla-eval`.

`act`: LeRobot's own ACT (`lerobot.policies.act`), see `vla.baselines.act`.
"""
