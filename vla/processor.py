"""The ONE function that turns an observation into model inputs, for training and rollout alike.

Train/eval parity is the field's most common silent failure, so both paths meet in `VLAProcessor.__call__`:
- `raw_from_dataset(batch)` takes a LeRobot batch (`image_key(cam)` = `observation.images.<cam>`, or
  `observation.image` for the camera `image`, float [B, 3, H, W] in [0, 1],
  `observation.state`, `task`, `action` chunks with `action_is_pad`);
- `raw_from_env(obs)` takes a (vector) env observation (`pixels.<cam>` uint8 [B, H, W, 3], `agent_pos`,
  `instruction`); both produce a `RawObservation` (images float [B, 3, H, W] in [0, 1]), and `__call__` does
  the rest: fast Qwen2.5-VL patchify (`images.FastPatchifier`), the chat prompt with the instruction
  (tokenized once per distinct instruction), left padding (so suffix tokens sit at the same positions for
  every row), `mm_token_type_ids` (3D M-RoPE positions), and state / action normalization with the dataset
  statistics saved in the checkpoint.
- Training batches may also carry `PRIVILEGED_KEY` (the target and goal positions the simulator knows); when
  the checkpoint's statistics include it, it is normalized into `aux_target` for an auxiliary loss. It is
  never a model input: `raw_from_env` does not read it. So is `OBJECTS_KEY` (every object's identity and image
  coordinates): it becomes the per-object labels of `vla.object_labels` (`aux["objects"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from envs.record import OBJECTS_KEY, PRIVILEGED_KEY, image_key
from envs.tasks.base import (
    OUT_OF_VIEW,
    PRIVILEGED_CAMERAS,
    PRIVILEGED_NAMES,
    PRIVILEGED_POINTS,
    privileged_uv_index,
)
from vla.images import FastPatchifier
from vla.normalize import Normalizer, StatsError
from vla.object_labels import object_attributes, point_attributes, policy_camera_uv

STATE_KEY, ACTION_KEY = "observation.state", "action"
N_AUX_XYZ = 3 * len(PRIVILEGED_POINTS)  # the privileged state starts with the points' 3D positions


@dataclass
class RawObservation:
    images: dict[str, torch.Tensor]  # camera -> [B, 3, H, W] float in [0, 1]
    state: torch.Tensor  # [B, S]
    instructions: list[str]
    actions: torch.Tensor | None = None  # [B, H, A] (training)
    action_is_pad: torch.Tensor | None = None  # [B, H] bool
    privileged: torch.Tensor | None = None  # [B, P] (training: auxiliary target; eval: oracle diagnostic)
    objects: torch.Tensor | None = None  # [B, O] every object's identity and (u, v) (training only)


class VLAProcessor:
    """Builds model inputs from raw observations; owns the normalizers (buffers saved with the checkpoint)."""

    def __init__(
        self,
        hf_processor,
        cameras: list[str],
        prompt: str,
        stats: dict,
        norm_modes: tuple[str, str],
        instruction_first: bool = False,
    ):
        self.hf, self.cameras, self.prompt = hf_processor, list(cameras), prompt
        self.instruction_first = instruction_first
        self.tok = hf_processor.tokenizer
        self.patchify = FastPatchifier(hf_processor.image_processor)
        self.stats = stats
        missing = [k for k in (STATE_KEY, ACTION_KEY) if k not in stats]
        if missing:
            raise StatsError(f"statistics are missing {missing}; have {sorted(stats)}")
        self.state_norm = Normalizer(STATE_KEY, stats, norm_modes[0])
        self.action_norm = Normalizer(ACTION_KEY, stats, norm_modes[1])
        self.aux_norm = Normalizer(PRIVILEGED_KEY, stats, "mean_std") if PRIVILEGED_KEY in stats else None
        if self.aux_norm is not None and self.aux_norm.dim != len(PRIVILEGED_NAMES):
            raise StatsError(
                f"{PRIVILEGED_KEY} has {self.aux_norm.dim} values in the dataset statistics but this version "
                f"records {len(PRIVILEGED_NAMES)} ({', '.join(PRIVILEGED_NAMES)}); re-record the dataset "
                "with svla-record"
            )
        self._prompt_ids = lru_cache(maxsize=256)(self._build_prompt_ids)
        self._instruction_ids = lru_cache(maxsize=256)(
            lambda text: tuple(self.tok(text, add_special_tokens=False)["input_ids"])
        )

    # -- adapters -------------------------------------------------------------------------------------------
    def raw_from_dataset(self, batch: dict) -> RawObservation:
        for key in [image_key(c) for c in self.cameras] + [STATE_KEY]:
            if key not in batch:
                raise KeyError(f"dataset batch has no {key!r} (has {sorted(k for k in batch if '.' in k)})")
        images = {c: batch[image_key(c)].float() for c in self.cameras}
        tasks = batch["task"]
        return RawObservation(
            images,
            batch[STATE_KEY].float(),
            list(tasks),
            batch.get(ACTION_KEY),
            batch.get("action_is_pad"),
            batch.get(PRIVILEGED_KEY),
            batch.get(OBJECTS_KEY),
        )

    def raw_from_env(self, obs: dict) -> RawObservation:
        pixels = obs["pixels"]
        missing = [c for c in self.cameras if c not in pixels]
        if missing:
            raise KeyError(
                f"policy cameras {missing} are not in the env observation (it has {sorted(pixels)})"
            )
        images = {}
        for c in self.cameras:
            img = torch.as_tensor(np.asarray(pixels[c]))
            img = img.unsqueeze(0) if img.ndim == 3 else img  # [B, H, W, 3]
            images[c] = img.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W]
        state = torch.as_tensor(np.asarray(obs["agent_pos"]), dtype=torch.float32)
        state = state.unsqueeze(0) if state.ndim == 1 else state
        instr = obs["instruction"]
        instr = [instr] if isinstance(instr, str) else [str(s) for s in instr]
        # only `svla-eval` puts it here: as the oracle's input (`oracle_grounding=true`) or to measure the
        # grounding error at rollout; the policy never acts on it otherwise
        priv = obs.get("privileged_state")
        if priv is not None:
            priv = torch.as_tensor(np.asarray(priv), dtype=torch.float32)
            priv = priv.unsqueeze(0) if priv.ndim == 1 else priv
        return RawObservation(images, state, instr, privileged=priv)

    def aux_targets(self, privileged: torch.Tensor) -> dict[str, torch.Tensor]:
        """Privileged state [B, 14] -> `xyz` [B, 6] (normalized 3D positions) and `uv` [B, P, C, 2] (image
        coordinates of the target and goal in each policy camera; `OUT_OF_VIEW` for cameras without them)."""
        xyz = self.aux_norm(privileged)[:, :N_AUX_XYZ]  # [B, 6]
        b = privileged.shape[0]
        uv = torch.full((b, len(PRIVILEGED_POINTS), len(self.cameras), 2), OUT_OF_VIEW)
        for p, point in enumerate(PRIVILEGED_POINTS):
            for c, cam in enumerate(self.cameras):
                if cam in PRIVILEGED_CAMERAS:
                    i = privileged_uv_index(point, cam)
                    uv[:, p, c] = privileged[:, i : i + 2]
        return {"xyz": xyz, "uv": uv}

    # -- the one function -----------------------------------------------------------------------------------
    def _build_prompt_ids(self, instruction: str, n_image_tokens: tuple[int, ...]) -> tuple[int, ...]:
        content = [{"type": "image"} for _ in self.cameras]
        text_part = {"type": "text", "text": self.prompt.format(instruction=instruction)}
        content = [text_part, *content] if self.instruction_first else [*content, text_part]
        text = self.hf.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        for n in n_image_tokens:
            text = text.replace("<|image_pad|>", "<|placeholder|>" * n, 1)
        text = text.replace("<|placeholder|>", "<|image_pad|>")
        return tuple(self.tok(text, add_special_tokens=False)["input_ids"])

    def _instruction_batch(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The instructions alone, right padded: ids [B, L] and mask [B, L] (what `policy.film` conditions the
        vision tower on and the motion decoder's instruction code pools)."""
        pad = self.tok.pad_token_id
        words = [self._instruction_ids(s) or (pad,) for s in instructions]
        ids = torch.full((len(words), max(len(w) for w in words)), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, w in enumerate(words):
            ids[i, : len(w)] = torch.tensor(w)
            mask[i, : len(w)] = 1
        return ids, mask

    def motion_inputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """An image-free training batch (`vla.motion_data`: state, privileged state, action chunk, task) ->
        the motion decoder's inputs, normalized exactly as `__call__` normalizes a full batch."""
        if self.aux_norm is None:
            raise StatsError(f"motion frames need {PRIVILEGED_KEY} statistics; have {sorted(self.stats)}")
        ids, mask = self._instruction_batch(list(batch["task"]))
        return {
            "state": self.state_norm(batch[STATE_KEY].float()),
            "xyz": self.aux_targets(batch[PRIVILEGED_KEY].float())["xyz"],
            "actions": self.action_norm(batch[ACTION_KEY].float()),
            "action_is_pad": batch["action_is_pad"],
            "instruction_ids": ids,
            "instruction_mask": mask,
        }

    def __call__(self, raw: RawObservation) -> dict[str, torch.Tensor]:
        b = raw.state.shape[0]
        if len(raw.instructions) != b:
            raise ValueError(f"{len(raw.instructions)} instructions for a batch of {b}")
        pixel_values, grids, n_tokens = [], [], []
        per_cam = []
        for c in self.cameras:
            pv, grid = self.patchify(raw.images[c])  # [B * N, P], [B, 3]
            per_cam.append(pv.view(b, -1, pv.shape[-1]))
            grids.append(grid)
            n_tokens.append(int(grid[0].prod()) // self.patchify.merge**2)
        # image order inside a row: cameras in order; rows in batch order
        pixel_values = torch.cat(per_cam, dim=1).reshape(-1, per_cam[0].shape[-1])  # [B * cams * N, P]
        image_grid_thw = torch.stack(grids, dim=1).reshape(-1, 3)  # [B * cams, 3]
        rows = [self._prompt_ids(s, tuple(n_tokens)) for s in raw.instructions]
        length = max(len(r) for r in rows)
        pad = self.tok.pad_token_id
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        attention_mask = torch.zeros((b, length), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding
            input_ids[i, length - len(r) :] = torch.tensor(r)
            attention_mask[i, length - len(r) :] = 1
        mm = (input_ids == self.hf.image_token_id).long()
        instruction_ids, instruction_mask = self._instruction_batch(raw.instructions)
        out = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mm_token_type_ids": mm,
            "pixel_values": pixel_values,
            "image_grid_thw": image_grid_thw,
            "instruction_ids": instruction_ids,
            "instruction_mask": instruction_mask,
            "state": self.state_norm(raw.state.float()),
        }
        if raw.actions is not None:
            out["actions"] = self.action_norm(raw.actions.float())
            is_pad = raw.action_is_pad
            out["action_is_pad"] = (
                is_pad if is_pad is not None else torch.zeros(raw.actions.shape[:2], dtype=torch.bool)
            )
        if raw.privileged is not None and self.aux_norm is not None:
            out["aux"] = self.aux_targets(raw.privileged.float())
        if raw.objects is not None:
            objs = object_attributes(raw.objects)
            objs["uv"] = policy_camera_uv(objs["uv"], self.cameras)  # [B, N, C, 2]
            if raw.privileged is not None:  # which object the target and the goal are (the pointers' wishes)
                points = raw.privileged.float()[:, :N_AUX_XYZ].view(b, -1, 3)  # [B, P, 3] metres
                objs["point_attrs"], objs["point_has"] = point_attributes(objs, points)
            out.setdefault("aux", {})["objects"] = objs
        return out
