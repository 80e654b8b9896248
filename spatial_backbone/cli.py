"""`svla-backbone`: build a backbone (tiny preset or checkpoint), smoke-test it, optionally save it.

svla-backbone                                   # tiny_1m, forward + greedy generation svla-backbone
backbone=tiny_5m out_dir=outputs/backbones/tiny_5m svla-backbone backbone=pretrained
backbone.name_or_path=/models/Qwen2.5-VL-3B-Instruct
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rich.console import Console

from envs.hydra_utils import hydra_app
from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import build_backbone, save_backbone
from spatial_backbone.smoke import smoke_test


@dataclass
class BuildBackboneConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    out_dir: str | None = None
    prompt: str = "Which object is closest to the camera?"
    max_new_tokens: int = 16
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")


def run(cfg: BuildBackboneConfig) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    model, processor = build_backbone(cfg.backbone)
    n_params = sum(p.numel() for p in model.parameters())
    result = smoke_test(model, processor, cfg.prompt, cfg.max_new_tokens, cfg.backbone.image_size or 112)
    console.print(
        f"[bold]backbone[/] {cfg.backbone.name_or_path}: {n_params / 1e6:.2f}M parameters on "
        f"{model.device}, dtype {model.dtype}, attention {model.config._attn_implementation}"
    )
    console.print(
        f"forward loss {result.loss:.3f} ({result.forward_s * 1e3:.1f} ms); generated "
        f"{result.new_tokens} tokens in {result.generate_s * 1e3:.1f} ms: {result.generated!r}"
    )
    out = {"params": n_params, "loss": result.loss, "generated": result.generated}
    if cfg.out_dir:
        path = save_backbone(model, processor, cfg.out_dir)
        console.print(f"saved to {path} (load it with backbone.name_or_path={path})")
        out["out_dir"] = str(path)
    return out


main = hydra_app("build_backbone", BuildBackboneConfig)(run)

if __name__ == "__main__":
    main()
