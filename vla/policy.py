"""SpatialVLA policy = Qwen2.5-VL backbone + action head.

Interface (DESIGN.md section 2): `forward(batch) -> (loss, metrics)`, `predict_action_chunk(obs) -> [B, H,
A]`, `select_action(obs)` (keeps a queue of chunked actions, re-plans every `n_action_steps`), `reset()`.
`batch` / `obs` are raw LeRobot batches or env observations; `VLAProcessor` turns both into model inputs.

Backbone call: image + prompt tokens (left padded), then the head's learned query tokens (if any) appended as
input embeddings; hidden states of the layers the head reads are passed on (`BackboneFeatures`). The discrete
`action_tokens` head instead extends the vocabulary and uses the LM head itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from envs.tasks.base import PRIVILEGED_POINTS
from spatial_backbone.factory import build_backbone
from vla.action_queue import ActionQueue
from vla.config import PolicyConfig
from vla.features import BackboneFeatures, image_token_coords, select_layers
from vla.film import VisionFiLM
from vla.heads import HeadDims, build_head
from vla.heads.action_tokens import ACTION_TOKENS
from vla.motion_data import MOTION_KEY
from vla.normalize import feature_dim
from vla.processor import ACTION_KEY, N_AUX_XYZ, PRIVILEGED_KEY, STATE_KEY, RawObservation, VLAProcessor


def inject_lora(model, cfg) -> None:
    """LoRA adapters (PEFT `inject_adapter_in_model`) on the language model's `cfg.target_modules`."""
    from peft import LoraConfig, inject_adapter_in_model

    lcfg = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules
    )
    model.model.language_model = inject_adapter_in_model(lcfg, model.model.language_model)


def base_state_dict(model) -> dict:
    """The backbone's weights under their original names: LoRA `base_layer`s unwrapped, adapter weights left
    out (they are saved with the head), so `from_pretrained` loads the result."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if "lora_" not in k}


class SpatialVLAPolicy(ActionQueue, nn.Module):
    def __init__(self, cfg: PolicyConfig, stats: dict, backbone=None):
        super().__init__()
        self.cfg = cfg
        model, hf_processor = backbone if backbone is not None else build_backbone(cfg.backbone)
        self.backbone = model
        if cfg.lora.enabled:
            inject_lora(model, cfg.lora)
        text_cfg = model.config.text_config
        self.layers = select_layers(cfg.head.hidden_layers, text_cfg.num_hidden_layers)
        dims = HeadDims(
            hidden=text_cfg.hidden_size,
            num_layers_read=len(self.layers),
            chunk=cfg.chunk_size,
            action_dim=feature_dim(stats, ACTION_KEY),
            state_dim=feature_dim(stats, STATE_KEY),
            n_cameras=len(cfg.cameras),
            aux_dim=N_AUX_XYZ if PRIVILEGED_KEY in stats else 0,
            aux_points=len(PRIVILEGED_POINTS) if PRIVILEGED_KEY in stats else 0,
        )
        self.head = build_head(cfg.head.name, dims, **cfg.head.kwargs)
        self.film = (
            VisionFiLM(model.model.visual, text_cfg.hidden_size, len(cfg.cameras)) if cfg.film else None
        )
        self.uses_lm = getattr(self.head, "uses_lm", False)
        if self.uses_lm:
            tok = hf_processor.tokenizer
            if ACTION_TOKENS[0] not in tok.get_vocab():
                tok.add_tokens(ACTION_TOKENS, special_tokens=False)
            self.head.first_id = tok.convert_tokens_to_ids(ACTION_TOKENS[0])
            if model.get_input_embeddings().num_embeddings < len(tok):
                model.resize_token_embeddings(len(tok), mean_resizing=False)
        modes = (
            getattr(self.head, "state_norm_mode", "mean_std"),
            getattr(self.head, "action_norm_mode", "mean_std"),
        )
        self.processor = VLAProcessor(
            hf_processor, cfg.cameras, cfg.prompt, stats, modes, instruction_first=cfg.instruction_first
        )
        self.state_norm, self.action_norm = self.processor.state_norm, self.processor.action_norm
        grounding = getattr(self.head, "grounding", None)
        if grounding is not None:  # `Grounding.relative` (ee_relative, the motion decoder) works in metres
            aux, st = self.processor.aux_norm, self.state_norm
            grounding.set_frames(
                xyz_center=aux.center[:N_AUX_XYZ],
                xyz_scale=aux.scale[:N_AUX_XYZ],
                ee_center=st.center[:3],
                ee_scale=st.scale[:3],
            )
        self.dims = dims
        # diagnostic (`svla-eval oracle_grounding=true`): the head reads the true target/goal positions from
        # the observation's privileged state instead of its own grounding predictions; never in training
        self.oracle_grounding = False
        # train-time augmentation of RawObservations (`vla.augment`, set by svla-train); never used at rollout
        self.train_transform: Callable[[RawObservation], RawObservation] | None = None
        self.objective = "act"  # `svla-train objective=perceive` sets "perceive" (training only, not saved)
        self.last_grounding_error = None  # [B, P] metres, set by each prediction (`_measure_grounding`)
        self._init_queue()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _to_device(self, inputs: dict) -> dict:
        move = self._to_device
        return {
            k: v.to(self.device) if torch.is_tensor(v) else move(v) if isinstance(v, dict) else v
            for k, v in inputs.items()
        }

    # -- backbone --------------------------------------------------------------------------------
    def _conditioned(self, inputs: dict):
        """The vision tower modulated by the instruction (`policy.film`), or unchanged."""
        if self.film is None:
            return contextlib.nullcontext()
        ids = inputs["instruction_ids"]  # [B, L]
        embeds = self.backbone.get_input_embeddings()(ids)  # [B, L, D]
        return self.film.conditioned(embeds, inputs["instruction_mask"], inputs["image_grid_thw"])

    def _features(self, inputs: dict, queries: bool = True) -> BackboneFeatures:
        """`queries=False` leaves the head's query tokens out (perception pre-training: the image tokens
        come first and are causal, so they are the same either way, and the queries stay untouched)."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]  # [B, S]
        b = ids.shape[0]
        embeds = self.backbone.get_input_embeddings()(ids)  # [B, S, D]
        q = self.head.query_embeddings(b) if queries else None
        mm = inputs["mm_token_type_ids"]
        if q is not None:  # append learned query tokens: [B, S + Q, D]
            n = q.shape[1]
            pad_ids = torch.full((b, n), self.processor.tok.pad_token_id, dtype=ids.dtype, device=ids.device)
            ids = torch.cat([ids, pad_ids], dim=1)
            embeds = torch.cat([embeds, q.to(embeds.dtype)], dim=1)
            mask = torch.cat([mask, torch.ones_like(pad_ids)], dim=1)
            mm = torch.cat([mm, torch.zeros_like(pad_ids)], dim=1)
        with self._conditioned(inputs):
            out = self.backbone.model(
                input_ids=ids,
                inputs_embeds=embeds,
                attention_mask=mask,
                mm_token_type_ids=mm,
                pixel_values=inputs["pixel_values"],
                image_grid_thw=inputs["image_grid_thw"],
                output_hidden_states=True,
                use_cache=False,
            )
        self.backbone.model.rope_deltas = None  # positions are recomputed for every new batch
        hs = [out.hidden_states[i].float() for i in self.layers]
        coords, img_mask = image_token_coords(
            ids,
            self.backbone.config.image_token_id,
            inputs["image_grid_thw"],
            self.processor.patchify.merge,
            len(self.cfg.cameras),
        )
        start = ids.shape[1] - (q.shape[1] if q is not None else 0)
        words = self.backbone.get_input_embeddings()(inputs["instruction_ids"]).float()  # [B, L, D]
        return BackboneFeatures(hs, mask, start, coords, img_mask, words, inputs["instruction_mask"])

    def _lm_inputs(self, inputs: dict, actions: torch.Tensor | None) -> dict:
        suffix = self.head.suffix_ids(inputs["state"], actions)  # [B, L]
        ones = torch.ones_like(suffix)
        return {
            "input_ids": torch.cat([inputs["input_ids"], suffix], dim=1),
            "attention_mask": torch.cat([inputs["attention_mask"], ones], dim=1),
            "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(suffix)], dim=1),
            "pixel_values": inputs["pixel_values"],
            "image_grid_thw": inputs["image_grid_thw"],
        }

    # -- interface --------------------------------------------------------------------------------
    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raw = self.processor.raw_from_dataset(batch)
        if self.training and self.train_transform is not None:
            raw = self.train_transform(raw)
        inputs = self._to_device(self.processor(raw))
        if self.objective == "perceive":
            loss, metrics = self._perception_loss(inputs)
        else:
            loss, metrics = self._action_loss(inputs, batch)
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def _action_loss(self, inputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The head's loss on the action chunk (+ the motion decoder's on image-free frames, if any)."""
        if "actions" not in inputs:
            raise KeyError("training batch has no 'action' chunk (load the dataset with delta_timestamps)")
        actions, is_pad = inputs["actions"], inputs["action_is_pad"]
        if actions.shape[1] != self.cfg.chunk_size:
            raise ValueError(
                f"batch action chunk has {actions.shape[1]} steps, policy chunk_size={self.cfg.chunk_size}"
            )
        if self.uses_lm:
            lm = self._lm_inputs(inputs, actions)
            with self._conditioned(inputs):
                out = self.backbone(**lm, use_cache=False)
            self.backbone.model.rope_deltas = None
            loss, metrics = self.head.lm_loss(out.logits, lm["input_ids"], is_pad)
        else:
            feats = self._features(inputs)
            loss, metrics = self.head.loss(feats, inputs["state"], actions, is_pad, inputs.get("aux"))
        if MOTION_KEY in batch:
            m_loss, m_metrics = self._motion_loss(batch[MOTION_KEY])
            loss, metrics = loss + m_loss, metrics | m_metrics
        return loss, metrics

    def _perception_loss(self, inputs: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """`svla-train objective=perceive`: the object probe's loss on the image tokens, nothing else."""
        objects = (inputs.get("aux") or {}).get("objects")
        grounding = getattr(self.head, "grounding", None)
        if objects is None or grounding is None:
            raise ValueError(
                "objective=perceive needs privileged.objects and privileged.target_goal in the batch and "
                f"a head with grounding (head {self.cfg.head.name!r}, kwargs {self.cfg.head.kwargs}); "
                "record with this version's svla-record and set head.kwargs.object_attrs=1.0"
            )
        return grounding.perception_loss(self._features(inputs, queries=False), objects)

    def _motion_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The motion decoder's loss on image-free frames (`vla.motion_data`, `svla-train motion_batch=N`)."""
        if getattr(self.head, "motion", None) is None:
            raise ValueError(
                f"the batch carries motion frames (motion_batch > 0) but head {self.cfg.head.name!r} has no "
                "motion decoder: set head=l1_chunk head.kwargs.motion=true, or motion_batch=0"
            )
        m = self._to_device(self.processor.motion_inputs(batch))
        words = self.backbone.get_input_embeddings()(m["instruction_ids"]).float()  # [B, L, D]
        return self.head.motion_loss(
            m["state"], m["xyz"], m["actions"], m["action_is_pad"], words, m["instruction_mask"]
        )

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict) -> torch.Tensor:
        """obs: env observation (single or batched) -> actions [B, H, A] in env units."""
        return self.predict_chunk_from_raw(self.processor.raw_from_env(obs))

    @torch.no_grad()
    def predict_chunk_from_raw(self, raw: RawObservation) -> torch.Tensor:
        """The inference path of env observations and of LeRobot batches (`lerobot_policy_svla`) alike:
        RawObservation -> actions [B, H, A] in env units. Runs under `torch.inference_mode` (no autograd
        bookkeeping per op: ~7% of a tiny backbone's chunk time) and returns a normal tensor, which callers
        may edit in place."""
        with torch.inference_mode():
            chunk = self._predict(raw)
        return chunk.clone()  # [B, H, A]; cloned outside inference mode: no longer an inference tensor

    def _predict(self, raw: RawObservation) -> torch.Tensor:
        inputs = self._to_device(self.processor(raw))
        if self.uses_lm:
            with self._conditioned(inputs):
                chunk = self.head.generate(self.backbone, self._lm_inputs(inputs, None))
            self.backbone.model.rope_deltas = None
        else:
            if self.oracle_grounding and (
                "aux" not in inputs or getattr(self.head, "grounding", None) is None
            ):
                raise ValueError(
                    "oracle_grounding needs a head trained with grounding supervision (l1_chunk or "
                    "flow_matching on a dataset with privileged.target_goal) and observations with "
                    f"'privileged_state' (our suite's envs); head {self.cfg.head.name!r}, observation has "
                    f"privileged state: {raw.privileged is not None}"
                )
            oracle = inputs["aux"] if self.oracle_grounding else None
            chunk, xyz = self.head.predict_with_grounding(self._features(inputs), inputs["state"], oracle)
            self._measure_grounding(xyz, inputs.get("aux"))
        return self.action_norm.inverse(chunk.float())  # [B, H, A]

    def _measure_grounding(self, xyz: torch.Tensor | None, true: dict | None) -> None:
        """Diagnostic: `last_grounding_error` [B, P] = metres between the head's own 3D target/goal prediction
        and the true positions, when the observation carries the privileged state (`svla-eval` passes it
        for our suite; the policy never acts on it unless `oracle_grounding`); else None."""
        grounding = getattr(self.head, "grounding", None)
        self.last_grounding_error = None
        if xyz is None or true is None or grounding is None:
            return
        err = grounding.metres(xyz.float()) - grounding.metres(true["xyz"].to(xyz).float())  # [B, P, 3]
        self.last_grounding_error = err.norm(dim=-1).cpu().numpy()  # [B, P]
