"""Grounding supervision shared by the continuous heads: say where the target and the goal are.

Why (DESIGN.md section 6, learning probe): a tiny random-init VLM learns *where* one object is within minutes
but barely learns *which* object the words name from the action loss alone. The simulator knows the answer,
so training data carries it (`privileged.target_goal`: the target's and goal's 3D positions and their image
coordinates in each camera), and the head learns to say it:
- `TargetPointers`: one query per point attends over each camera's image tokens; the attention-weighted token
  centres (spatial soft-argmax, Levine et al. 2016) are supervised by the true image coordinates, which trains
  the attention itself to pick out the named object;
- `AuxTargets`: an MLP predicts the points' 3D positions from the query state and the pointers.
- `object_attrs` > 0 adds a linear probe on the tokens the pointers read, trained (binary cross-entropy,
  that weight) to say what object each image token holds: shape, colour, size and the anchor-free relations
  that single it out of its shape pool (`vla.object_labels`, from the recorded `privileged.objects`), so the
  pointers choose among tokens that already say "cube" and "the leftmost cube".
- `attr_match` (with `object_attrs`) makes that choice explicit, as attribute modules of referring-expression
  models do (MAttNet, Yu et al. 2018): each pointer query also says which attributes it looks for (a linear
  map of its state, trained with the same weight against the attributes of the object at that point: the
  target's, and the goal's when the goal is an object), and its score for a token adds the match of those
  wishes with the probe's attribute probabilities for the token. The probe then runs at rollout too.
- `token_neck` > 0 (`TokenNeck`) puts that many bidirectional encoder layers over the image tokens, each told
  where it is, between the backbone and everything above (pointers, hops, probe): the language model reads
  image tokens causally and without absolute positions, so only such a neck lets a token compute a relation
  to the other objects ("the leftmost of the cubes") before the pointers choose.
The action decoder reads both predictions. At rollout nothing privileged is read: the predictions come from
the images. This is privileged-information supervision of perception, as in sim-trained manipulation
policies that regress object poses as an auxiliary task.
"""

from __future__ import annotations

import torch
from torch import nn

from vla.heads.base import HeadDims, LayerMix
from vla.object_labels import N_ATTRIBUTES, token_targets


class AuxTargets(nn.Module):
    """Predicts the privileged target/goal positions from head features (L1 when the batch has them).

    Why: the policy has to find the object the words name before it can act on it, and the action loss alone
    teaches that slowly (DESIGN.md section 6, learning probe). The simulator knows where the target and goal
    are, so the head learns to say where they are (an auxiliary loss on the training data) and the action
    decoder reads that prediction. At rollout nothing privileged is read: the prediction comes from the image.
    x [B, F] -> [B, P] (normalized positions).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128):
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor | None:
        return None if target is None else (pred - target).abs().mean()


FOURIER_FREQS = (1.0, 2.0, 4.0)


def fourier_xy(xy: torch.Tensor) -> torch.Tensor:
    """Image coordinates in [-1, 1] -> (u, v) and their sines and cosines at `FOURIER_FREQS` half-turns:
    [..., 2] -> [..., 2 + 4F]. A linear map of these can rise towards one side of the image ("the leftmost")
    or peak around a point ("closest to"), as a function of the query."""
    ang = torch.pi * xy[..., None, :] * xy.new_tensor(FOURIER_FREQS)[:, None]  # [..., F, 2]
    return torch.cat([xy, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)


def token_places(token_coords: torch.Tensor) -> torch.Tensor:
    """Where each token is: Fourier features of its image (u, v) and its camera one-hot,
    [B, S, 2 + C] -> [B, S, 2 + 4F + C]."""
    return torch.cat([fourier_xy(token_coords[..., :2]), token_coords[..., 2:]], dim=-1)


class TokenNeck(nn.Module):
    """Bidirectional encoder layers over the image tokens of every camera, each token told where it is,
    between the backbone and what reads its tokens (the pointers, their hops and the object probe).

    Why (session 22): Qwen2.5-VL's language model reads the image tokens causally (a token sees only the
    tokens before it in raster order) and its hidden states carry no absolute position, so a token cannot
    compute "I am the leftmost cube" -- a comparison with every other cube, some later in the sequence. The
    object probe measured it: after 16000 VLA steps the tokens named shape in 0.69-0.89 of cases but the
    relation flags in only 0.57-0.75 (balanced accuracy), and relational instructions were the suite's
    failures. This neck is a small set-encoder over the image tokens (self-attention among all of them, with
    Fourier features of each token's (u, v) and its camera added to its input: DETR's encoder), so relations
    between objects can be written into the tokens themselves. The residual branch of each layer starts at
    zero (attention output and MLP output projections, and the position features, zero-initialised): a new
    neck is the identity, so it can be added to a trained policy (`init_from`) without disturbing it.
    Text and query tokens pass through unchanged.
    tokens [B, S, D], token_coords [B, S, 2 + C], image_mask [B, S] -> [B, S, D].
    """

    def __init__(self, dim: int, n_cameras: int, layers: int, heads: int = 4):
        super().__init__()
        self.where = nn.Linear(2 + 4 * len(FOURIER_FREQS) + n_cameras, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        for m in [
            self.where,
            *(m for blk in self.layers.layers for m in (blk.self_attn.out_proj, blk.linear2)),
        ]:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self, tokens: torch.Tensor, token_coords: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        x = tokens + self.where(token_places(token_coords))  # [B, S, D]
        out = self.layers(x, src_key_padding_mask=~image_mask)  # [B, S, D]
        return torch.where(image_mask[..., None], out, tokens)  # [B, S, D]


class RelationalHops(nn.Module):
    """Decoder layers that let the pointer queries look at the image before they point: each hop is
    self-attention among the points' queries, then cross-attention over the image tokens, then an MLP
    (a DETR decoder layer, pre-norm). The image tokens' VALUES carry where each token is (Fourier features of
    its (u, v) and its camera), so a hop can read the position of the object a phrase names ("the blue
    ball") into the query. The final pointer's position-aware keys (`pos_keys`) then score tokens by a
    function of that position: the dot product of two Fourier feature vectors is a kernel of the distance
    between the two points (cos(a - x) = cos a cos x + sin a sin x), so "the cube closest to the blue ball"
    becomes content ("cube") + a kernel around the anchor, "farthest" its negative, "leftmost" a ramp in u.

    Why: Qwen2.5-VL's hidden states carry no absolute position (its 2D rotary positions act inside attention
    only), so a one-step pointer from one query state cannot know where the anchor is, and relational
    instructions were the suite's failures (72% of Reach's failures ended at another object, session 13).
    q [B, P, D], tokens [B, S, D], token_coords [B, S, 2 + C], image_mask [B, S] -> q [B, P, D].
    """

    def __init__(self, dim: int, n_cameras: int, hops: int, heads: int = 4):
        super().__init__()
        self.where = nn.Linear(2 + 4 * len(FOURIER_FREQS) + n_cameras, dim)
        layer = nn.TransformerDecoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, hops, norm=nn.LayerNorm(dim))

    def forward(
        self, q: torch.Tensor, tokens: torch.Tensor, token_coords: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        memory = tokens + self.where(token_places(token_coords))  # [B, S, D]
        return self.layers(q, memory, memory_key_padding_mask=~image_mask)  # [B, P, D]


class TargetPointers(nn.Module):
    """Where the target and the goal are in each camera image: one query per point attends over that camera's
    image tokens; the attention-weighted token centres (spatial soft-argmax) are the answer, [B, P, C, 2].

    Supervised with the points' true image coordinates (`uv_loss`), this trains the attention itself to pick
    out the object the instruction names -- a direct grounding signal, where a 3D regression from pooled
    features reaches the attention only through an MLP.
    q0 [B, D] (a query token's hidden state) -> [B, P, C, 2] in [-1, 1].

    `pos_keys` adds each token's image position (Fourier features of its (u, v), `fourier_xy`) to its
    key, as DETR adds spatial encodings to the keys of its decoder's cross-attention. Without it a pointer
    chooses a token only by what its hidden state says: Qwen2.5-VL has no absolute position embedding (2D
    rotary positions act inside attention only), so "the leftmost cube" must be read off content alone.
    `hops` > 0 puts that many `RelationalHops` decoder layers between the query and the pointing, so the
    query can first read where the objects the instruction relates to are ("closest to the blue ball").
    `offsets` lets every image token move the point it stands for off its centre (a per-token, per-point
    sub-token offset read from its hidden state, CenterNet-style; zero at initialization): the soft-argmax
    alone can only interpolate between token centres, and one merged token spans a quarter of a 112 px image
    (~15 cm of the table in the front camera), while the motion needs ~1 cm.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_points: int,
        n_cameras: int,
        pos_keys: bool = False,
        hops: int = 0,
        heads: int = 4,
        offsets: bool = False,
        attr_dim: int = 0,
        neck: int = 0,
    ):
        super().__init__()
        self.p, self.c, self.dim = n_points, n_cameras, dim
        # `attr_dim` > 0: the queries' wished-for attributes, matched with the tokens' (zero-init: no effect)
        self.attr_q = nn.Linear(dim, attr_dim) if attr_dim else None
        if self.attr_q is not None:
            nn.init.zeros_(self.attr_q.weight)
            nn.init.zeros_(self.attr_q.bias)
        self.offset = nn.Linear(dim, n_points * 2) if offsets else None
        if self.offset is not None:  # start as the plain soft-argmax
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
        self.mix = LayerMix(n_layers, dim)
        self.neck = TokenNeck(dim, n_cameras, neck, heads) if neck > 0 else None
        self.q = nn.Linear(dim, n_points * dim)
        self.key = nn.Linear(dim, dim)
        self.pos = nn.Linear(2 + 4 * len(FOURIER_FREQS), dim) if pos_keys else None
        self.hops = RelationalHops(dim, n_cameras, hops, heads) if hops > 0 else None
        self.out_dim = n_points * n_cameras * 2

    def tokens(self, feats) -> torch.Tensor:
        """The tokens the pointers (and the object probe) read: the backbone layers mixed, then the neck's
        relations written in, if it has one. -> [B, S, D]"""
        tokens = self.mix(feats.hidden_states)  # [B, S, D]
        if self.neck is not None:
            tokens = self.neck(tokens, feats.token_coords, feats.image_mask)  # [B, S, D]
        return tokens

    def forward(
        self,
        q0: torch.Tensor,
        feats,
        token_attrs: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> pointers [B, P, C, 2], each camera's attention log-probabilities over tokens [B, P, C, S], and
        the queries' attribute logits [B, P, K] (None without `attr_dim`). `token_attrs` [B, S, K]: the
        tokens' attribute probabilities, matched with the queries' (needed with `attr_dim`); `tokens`
        [B, S, D]: this module's `tokens(feats)` when the caller has them already."""
        b, d = q0.shape
        tokens = self.tokens(feats) if tokens is None else tokens  # [B, S, D]
        keys = self.key(tokens)  # [B, S, D]
        xy = feats.token_coords[..., :2]  # [B, S, 2]
        if self.pos is not None:
            keys = keys + self.pos(fourier_xy(xy))  # [B, S, D]
        q = self.q(q0).view(b, self.p, d)  # [B, P, D]
        if self.hops is not None:
            q = self.hops(q, tokens, feats.token_coords, feats.image_mask)  # [B, P, D]
        logits = q @ keys.transpose(1, 2) / d**0.5  # [B, P, S]
        q_attrs = None
        if self.attr_q is not None:
            if token_attrs is None:
                raise ValueError("attribute-matched pointers need the tokens' attribute probabilities")
            q_attrs = self.attr_q(q)  # [B, P, K]
            logits = logits + q_attrs @ token_attrs.transpose(1, 2)  # [B, P, S]
        if self.offset is not None:  # each token's own estimate of each point: centre + offset
            off = self.offset(tokens).view(b, -1, self.p, 2).transpose(1, 2)  # [B, P, S, 2]
            points = xy[:, None] + off  # [B, P, S, 2]
        out, logps = [], []
        for c in range(self.c):
            on_cam = feats.image_mask & (feats.token_coords[..., 2 + c] > 0.5)  # [B, S]
            logp = torch.log_softmax(
                logits.masked_fill(~on_cam[:, None, :], float("-inf")), dim=-1
            )  # [B, P, S]
            prob = logp.exp()  # [B, P, S]
            out.append(prob @ xy if self.offset is None else (prob[..., None] * points).sum(2))  # [B, P, 2]
            logps.append(logp)
        return torch.stack(out, dim=2), torch.stack(logps, dim=2), q_attrs  # [B, P, C, 2], [B, P, C, S], ...

    @staticmethod
    def uv_loss(pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor | None:
        """L1 over the (point, camera) pairs in view (|u|, |v| <= 1); None without a target."""
        if target is None:
            return None
        seen = (target.abs() <= 1.0).all(-1)  # [B, P, C]
        err = (pred - target).abs().sum(-1)  # [B, P, C]
        return (err * seen).sum() / seen.sum().clamp_min(1)

    @staticmethod
    def token_ce(
        logp: torch.Tensor, token_coords: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Cross-entropy of each pointer's attention against the image token nearest the true (u, v), over the
        (point, camera) pairs in view: a classification signal on WHICH token holds the object, where the
        soft-argmax L1 only sees the attention's mean position (spread over three objects, that mean can
        still sit near the target). logp [B, P, C, S], token_coords [B, S, 2 + C], target [B, P, C, 2]."""
        if target is None:
            return None
        c = logp.shape[2]
        xy = token_coords[..., :2]  # [B, S, 2]
        on_cam = torch.stack([token_coords[..., 2 + i] > 0.5 for i in range(c)], dim=1)  # [B, C, S]
        dist = (xy[:, None, None] - target[..., None, :]).pow(2).sum(-1)  # [B, P, C, S]
        dist = dist.masked_fill(~on_cam[:, None], float("inf"))
        nearest = dist.argmin(-1, keepdim=True)  # [B, P, C, 1]
        nll = -logp.gather(-1, nearest).squeeze(-1)  # [B, P, C]
        seen = (target.abs() <= 1.0).all(-1)  # [B, P, C]
        return (nll * seen).sum() / seen.sum().clamp_min(1)


class Grounding(nn.Module):
    """Pointers + 3D positions from one query state: q0 [B, D] (+ extra [B, E]) -> predictions and the flat
    features [B, out_dim] an action decoder reads. `loss` adds both terms where the batch has targets."""

    def __init__(
        self,
        dims: HeadDims,
        extra_dim: int = 0,
        pointer_ce: float = 0.0,
        pointer_pos: bool = False,
        pointer_hops: int = 0,
        ee_relative: bool = False,
        teacher_forcing: float = 0.0,
        pointer_offsets: bool = False,
        xyz_state: bool = False,
        object_attrs: float = 0.0,
        attr_match: bool = False,
        token_neck: int = 0,
    ):
        super().__init__()
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing={teacher_forcing!r} must be a probability in [0, 1]")
        self.teacher_forcing = teacher_forcing
        if pointer_hops < 0:
            raise ValueError(f"pointer_hops={pointer_hops!r} must be >= 0 (0 = point in one step)")
        if pointer_hops and not pointer_pos:
            raise ValueError(
                f"pointer_hops={pointer_hops!r} needs pointer_pos=true: the hops read where the anchor is, "
                "and only position-aware keys can turn that into where to point"
            )
        for name, value, what, does in (
            ("object_attrs", object_attrs, "a loss weight: >= 0 (0 = no object probe)", "probes"),
            ("token_neck", token_neck, "a number of encoder layers: >= 0 (0 = no neck)", "encodes"),
        ):
            if value < 0:
                raise ValueError(f"{name}={value!r} is {what}")
            if value and not dims.aux_points:
                raise ValueError(
                    f"{name}={value!r} {does} the tokens the pointers read, and this policy has no pointers "
                    "(the dataset statistics have no privileged target/goal positions)"
                )
        if attr_match and not object_attrs:
            raise ValueError(
                "attr_match=true matches the pointers' wished-for attributes with the object probe's: it "
                f"needs object_attrs > 0 (got object_attrs={object_attrs!r})"
            )
        self.pointer_ce = pointer_ce
        self.object_attrs, self.attr_match = object_attrs, attr_match
        self.pointers = (
            TargetPointers(
                dims.hidden,
                dims.num_layers_read,
                dims.aux_points,
                dims.n_cameras,
                pointer_pos,
                pointer_hops,
                offsets=pointer_offsets,
                attr_dim=N_ATTRIBUTES if attr_match else 0,
                neck=token_neck,
            )
            if dims.aux_points
            else None
        )
        ptr_dim = self.pointers.out_dim if self.pointers else 0
        self.obj_probe = nn.Linear(dims.hidden, N_ATTRIBUTES) if object_attrs else None
        # `xyz_state`: the 3D MLP also reads the proprio state, i.e. where the wrist camera is, so the wrist
        # image's coordinates (precise near the object) can become world positions; without it only the
        # fixed front camera's coordinates map to the table
        self.xyz_state = xyz_state
        self.xyz = AuxTargets(
            dims.hidden + extra_dim + ptr_dim + (dims.state_dim if xyz_state else 0), dims.aux_dim
        )
        self.ee_relative = ee_relative
        # metric frames, set by the policy from the dataset statistics (`set_frames`): `relative` needs them
        self.register_buffer("xyz_center", torch.zeros(dims.aux_dim), persistent=False)
        self.register_buffer("xyz_scale", torch.ones(dims.aux_dim), persistent=False)
        self.register_buffer("ee_center", torch.zeros(3), persistent=False)
        self.register_buffer("ee_scale", torch.ones(3), persistent=False)
        self.out_dim = ptr_dim + dims.aux_dim * (2 if ee_relative else 1)

    def set_frames(self, **frames: torch.Tensor) -> None:
        """How to turn the normalized 3D points [P * 3] (`xyz_center`, `xyz_scale`) and the state's first
        three values (`ee_center`, `ee_scale`: the end-effector position, in the same world frame: our
        suite's `agent_pos`) back into metres."""
        for name, v in frames.items():
            getattr(self, name).copy_(torch.as_tensor(v, dtype=torch.float32))

    def metres(self, xyz: torch.Tensor) -> torch.Tensor:
        """Normalized points [B, P * 3] -> world positions in metres [B, P, 3]."""
        return (xyz * self.xyz_scale + self.xyz_center).view(xyz.shape[0], -1, 3)

    def relative(self, xyz: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Each point minus the end-effector position, in decimetres: xyz [B, P * 3] (normalized), state
        [B, S] (normalized, end-effector first) -> [B, P * 3]. What a waypoint controller computes: the
        approach is (target - ee), the carry (goal - ee); an MLP that must learn the subtraction from two
        differently normalized inputs learns it slowly and imprecisely (session 14: with the true positions
        fed in, a policy without it still missed the target by ~3 cm and never carried it to the goal)."""
        pts = self.metres(xyz)  # [B, P, 3]
        ee = state[:, :3] * self.ee_scale + self.ee_center  # [B, 3] metres
        return ((pts - ee[:, None]) * 10.0).flatten(1)  # [B, P * 3] decimetres

    def forward(
        self,
        q0: torch.Tensor,
        feats,
        extra: torch.Tensor | None = None,
        oracle: dict | None = None,
        state: torch.Tensor | None = None,
        teacher: dict | None = None,
    ):
        """-> predictions and the features [B, out_dim] the action decoder reads. `oracle` (the true `uv`
        [B, P, C, 2] and `xyz` [B, P * 3], as the processor builds them from the privileged state) replaces
        the predictions in those features: a diagnostic of what the decoder does when grounding is right
        (`svla-eval oracle_grounding=true`). `teacher` (the same targets, in training) replaces them in a
        random `teacher_forcing` share of the rows: the decoder learns the motion from clean positions while
        the grounding losses keep training the predictions it reads at rollout (scheduled sampling, Bengio
        et al. 2015)."""
        pred: dict[str, torch.Tensor] = {}
        found = []
        tokens = None  # the pointers' token mix, computed once when the probe reads it too
        if self.obj_probe is not None and (self.training or self.attr_match):
            tokens = self.pointers.tokens(feats)  # [B, S, D]
            pred |= self.probe_tokens(feats, tokens)
        if self.pointers is not None:
            token_attrs = pred["obj_logits"].sigmoid() if self.attr_match else None  # [B, S, K]
            pred["uv"], pred["uv_logp"], q_attrs = self.pointers(
                q0, feats, token_attrs, tokens
            )  # [B, P, C, 2], ...
            if q_attrs is not None:
                pred["q_attrs"] = q_attrs  # [B, P, K]
            pred["token_coords"] = feats.token_coords  # [B, S, 2 + C]
            found.append(pred["uv"].flatten(1))
        inputs = [q0] + ([extra] if extra is not None else []) + found
        if self.xyz_state:
            if state is None:
                raise ValueError("xyz_state grounding needs the (normalized) state")
            inputs.append(state)
        pred["xyz"] = self.xyz(torch.cat(inputs, dim=-1))  # [B, P * 3]
        xyz = pred["xyz"]
        rows = None  # [B, 1] which rows read the true positions
        if oracle is not None:
            rows = torch.ones(q0.shape[0], 1, dtype=torch.bool, device=q0.device)
        elif teacher and self.training and self.teacher_forcing > 0:
            rows = torch.rand(q0.shape[0], 1, device=q0.device) < self.teacher_forcing
            oracle = teacher
        if rows is not None:
            found = []
            if self.pointers is not None:
                true_uv = oracle["uv"].to(pred["uv"])  # [B, P, C, 2]
                seen = (true_uv.abs() <= 1.0).all(-1, keepdim=True) & rows[:, :, None, None]  # [B, P, C, 1]
                found.append(torch.where(seen, true_uv, pred["uv"]).flatten(1))  # out of view: own guess
            xyz = torch.where(rows, oracle["xyz"].to(pred["xyz"]), pred["xyz"])  # [B, P * 3]
        found.append(xyz)
        if self.ee_relative:
            if state is None:
                raise ValueError("ee_relative grounding needs the (normalized) state")
            found.append(self.relative(xyz, state))
        return pred, torch.cat(found, dim=-1)  # ..., [B, out_dim]

    def loss(
        self, pred: dict, target: dict | None, weight: float
    ) -> tuple[torch.Tensor | float, dict[str, float]]:
        """weight * (3D L1 + image-coordinate L1 + pointer_ce * token cross-entropy) and their values; 0
        without targets."""
        if not target:
            return 0.0, {}
        total, metrics = 0.0, {}
        xyz = AuxTargets.loss(pred["xyz"], target.get("xyz"))
        uv = TargetPointers.uv_loss(pred["uv"], target.get("uv")) if "uv" in pred else None
        ce = None
        if "uv" in pred and self.pointer_ce > 0:
            ce = TargetPointers.token_ce(pred["uv_logp"], pred["token_coords"], target.get("uv"))
        obj = None
        if "obj_logits" in pred:
            if "objects" not in target:
                raise ValueError(
                    f"head.kwargs.object_attrs={self.object_attrs!r} needs privileged.objects in the "
                    "training data (every object's identity and image coordinates); re-record it with this "
                    "version's svla-record, or set head.kwargs.object_attrs=0"
                )
            obj = self.object_loss(pred, target["objects"])
        wish = None
        if "q_attrs" in pred and "point_attrs" in target.get("objects", {}):
            wish = self.wish_loss(pred["q_attrs"], target["objects"])
        for name, term, w in (
            ("aux_l1", xyz, 1.0),
            ("uv_l1", uv, 1.0),
            ("uv_ce", ce, self.pointer_ce),
            ("obj_bce", obj, self.object_attrs),
            ("wish_bce", wish, self.object_attrs),
        ):
            if term is not None:
                metrics[name] = float(term.detach())
                total = total + weight * w * term
        return total, metrics

    def probe_tokens(self, feats, tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The object probe on the pointers' tokens (`tokens` [B, S, D] if already computed): its logits
        [B, S, K] with the image mask [B, S] and token coordinates [B, S, 2 + C] its loss needs."""
        tokens = self.pointers.tokens(feats) if tokens is None else tokens  # [B, S, D]
        return {
            "obj_logits": self.obj_probe(tokens),  # [B, S, K]
            "image_mask": feats.image_mask,  # [B, S]
            "token_coords": feats.token_coords,  # [B, S, 2 + C]
        }

    def perception_loss(self, feats, objects: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The object probe's loss alone (`svla-train objective=perceive`): which object every image token
        holds, from the pointers' token mix; the pointers, 3D targets and actions are not computed."""
        if self.obj_probe is None or self.pointers is None:
            raise ValueError(
                "objective=perceive needs the object probe on the pointer tokens: "
                "head.kwargs.object_attrs > 0 and a dataset with privileged.target_goal"
            )
        bce = self.object_loss(self.probe_tokens(feats), objects)
        return self.object_attrs * bce, {"obj_bce": float(bce.detach())}

    @staticmethod
    def object_loss(pred: dict, objects: dict) -> torch.Tensor:
        """Binary cross-entropy of the object probe [B, S, K] against `token_targets`, image tokens only."""
        labels = token_targets(
            objects["attrs"], objects["present"], objects["uv"].to(pred["token_coords"]), pred["token_coords"]
        )  # [B, S, K]
        bce = nn.functional.binary_cross_entropy_with_logits(
            pred["obj_logits"], labels.to(pred["obj_logits"]), reduction="none"
        ).mean(-1)  # [B, S]
        mask = pred["image_mask"].float()  # [B, S]
        return (bce * mask).sum() / mask.sum().clamp_min(1.0)

    @staticmethod
    def wish_loss(q_attrs: torch.Tensor, objects: dict) -> torch.Tensor:
        """Binary cross-entropy of the queries' attribute logits [B, P, K] against the attributes of the
        object at each point (`point_attrs` [B, P, K]), over the points that are an object (`point_has`
        [B, P])."""
        bce = nn.functional.binary_cross_entropy_with_logits(
            q_attrs, objects["point_attrs"].to(q_attrs), reduction="none"
        ).mean(-1)  # [B, P]
        has = objects["point_has"].to(q_attrs)  # [B, P]
        return (bce * has).sum() / has.sum().clamp_min(1.0)
