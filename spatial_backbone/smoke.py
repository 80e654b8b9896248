"""A quick check that a backbone sees and speaks: one image + a question -> forward loss and greedy text."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch


def synthetic_image(size: int = 112, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 HxWx3 image: a gray table with three colored squares."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 150, dtype=np.uint8)
    for color in ((220, 40, 40), (40, 200, 60), (40, 80, 220)):
        s = size // 8
        y, x = rng.integers(0, size - s, size=2)
        img[y : y + s, x : x + s] = color
    return img


def chat_inputs(processor, images: list[np.ndarray], question: str, system: str | None = None):
    """Processor inputs for one user turn + generation prompt, with `mm_token_type_ids` (3D M-RoPE)."""
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    system = system if system is not None else getattr(processor, "svla_default_system_prompt", None)
    if system:
        messages.insert(0, {"role": "system", "content": system})
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=images or None, text=[text], return_tensors="pt")


@dataclass
class SmokeResult:
    loss: float
    generated: str
    new_tokens: int
    forward_s: float
    generate_s: float


@torch.no_grad()
def smoke_test(
    model, processor, question: str, max_new_tokens: int = 16, image_size: int = 112
) -> SmokeResult:
    inputs = chat_inputs(processor, [synthetic_image(image_size)], question).to(model.device)
    t0 = time.perf_counter()
    out = model(**inputs, labels=inputs["input_ids"])
    t1 = time.perf_counter()
    gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    t2 = time.perf_counter()
    new = gen[0, inputs["input_ids"].shape[1] :]
    text = processor.tokenizer.decode(new, skip_special_tokens=False)
    return SmokeResult(float(out.loss), text, int(new.numel()), t1 - t0, t2 - t1)
