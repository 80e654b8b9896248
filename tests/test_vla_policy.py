"""Policy contract over every registered head: train step, chunk prediction, action queue, checkpoints."""

import math

import numpy as np
import pytest
import torch

from spatial_backbone.config import BackboneConfig
from spatial_backbone.factory import build_backbone
from vla.checkpoint import CheckpointError, check_features, load_policy, read_features, save_policy
from vla.config import HeadConfig, PolicyConfig
from vla.heads import HEADS
from vla.images import FastPatchifier
from vla.normalize import StatsError
from vla.policy import SpatialVLAPolicy

S, A, H, B = 9, 4, 8, 3
STATS = {
    "observation.state": {"mean": [0.1] * S, "std": [0.5] * S, "q01": [-1.0] * S, "q99": [1.0] * S},
    "action": {"mean": [0.0] * A, "std": [0.5] * A, "q01": [-1.0] * A, "q99": [1.0] * A},
}


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.images.front": torch.rand(B, 3, 112, 112, generator=g),
        "observation.images.wrist": torch.rand(B, 3, 112, 112, generator=g),
        "observation.state": torch.randn(B, S, generator=g),
        "task": [
            "pick up the cube",
            "put the leftmost cube on the plate",
            "touch the ball closest to the bin",
        ],
        "action": torch.randn(B, H, A, generator=g).clamp(-1, 1),
        "action_is_pad": torch.tensor([[False] * H, [False] * (H - 2) + [True] * 2, [False] * H]),
    }


def _obs(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "pixels": {c: rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8) for c in ("front", "wrist")},
        "agent_pos": rng.normal(size=(n, S)).astype(np.float32),
        "instruction": ["pick up the cube", "touch the red ball"][:n],
    }


def _policy(head, **kw):
    torch.manual_seed(0)
    return SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=head), **kw), STATS)


def _grounded_policy(head_kwargs: dict):
    """An l1_chunk policy with grounding supervision (privileged statistics) and a batch carrying targets."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    stats = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * n, "std": [0.1] * n}}
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name="l1_chunk", kwargs=head_kwargs)), stats)
    priv = torch.rand(B, n, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    return policy, _batch() | {PRIVILEGED_KEY: priv}


def test_fast_patchify_equals_the_qwen_image_processor():
    _, processor = build_backbone(BackboneConfig())
    imgs = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    ref = processor.image_processor(images=list(imgs), return_tensors="pt")
    pv, grid = FastPatchifier(processor.image_processor)(torch.from_numpy(imgs).permute(0, 3, 1, 2) / 255.0)
    assert torch.equal(grid, ref["image_grid_thw"])
    assert (pv - ref["pixel_values"]).abs().max() < 1e-5


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_learns_and_predicts(head):
    policy = _policy(head)
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    batch = _batch()
    first = None
    for _ in range(15):
        loss, metrics = policy(batch)
        assert torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    assert float(policy(batch)[0]) < first  # it fits a fixed batch
    grads = [p.grad for p in policy.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # the loss reaches the backbone
    policy.eval()
    chunk = policy.predict_action_chunk(_obs())
    assert chunk.shape == (2, H, A) and torch.isfinite(chunk).all()
    assert not chunk.is_inference()  # predicted under inference mode, handed out as a normal tensor
    chunk.clamp_(-1e6, 1e6)  # callers may edit it in place
    policy.train()  # training after rollouts: nothing cached under inference mode reaches autograd
    policy(batch)[0].backward()


@pytest.mark.parametrize("head", ["l1_chunk"])
def test_select_action_replans_every_k_steps(head):
    policy = _policy(head, n_action_steps=3).eval()
    obs = _obs(1)
    chunk = policy.predict_action_chunk(obs)[0].numpy()
    policy.reset()
    actions = [policy.select_action(obs)[0] for _ in range(4)]
    np.testing.assert_allclose(actions[:3], chunk[:3], atol=1e-5)
    np.testing.assert_allclose(actions[3], chunk[0], atol=1e-5)  # re-planned from the same obs


def test_missing_statistics_is_an_error():
    with pytest.raises(StatsError, match="action"):
        SpatialVLAPolicy(PolicyConfig(), {"observation.state": STATS["observation.state"]})
    bad = {"observation.state": {"mean": [0.0] * S}, "action": STATS["action"]}
    with pytest.raises(StatsError, match="std"):
        SpatialVLAPolicy(PolicyConfig(), bad)


def test_misspelt_head_kwarg_is_an_error_naming_it_and_the_valid_keys():
    """Both parallel heads forward the grounding options to one module; a typo in any key fails at config
    time (hydra builds HeadConfig) instead of silently training with the default."""
    for name in ("l1_chunk", "flow_matching"):
        HeadConfig(name=name, kwargs={"pointer_pos": True, "token_neck": 1})  # grounding keys are accepted
        with pytest.raises(ValueError, match=r"head.kwargs.pointer_hop: not an option of head") as err:
            HeadConfig(name=name, kwargs={"pointer_hop": 1})
        assert "pointer_hops" in str(err.value)  # the valid keys are listed
    with pytest.raises(ValueError, match="head.kwargs.pointer_pos"):
        HeadConfig(name="action_tokens", kwargs={"pointer_pos": True})  # no grounding in this head
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    stats = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * n, "std": [0.1] * n}}
    for name in ("l1_chunk", "flow_matching"):  # the forwarded options reach the grounding module
        kwargs = {"pointer_hops": 1, "pointer_pos": True}
        policy = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=name, kwargs=kwargs)), stats)
        assert policy.head.grounding.pointers.hops is not None
        assert (
            SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=name)), stats).head.grounding.pointers.hops
            is None
        )


def test_env_and_dataset_paths_give_the_same_inputs():
    policy = _policy("l1_chunk")
    obs = _obs(2)
    batch = {
        f"observation.images.{c}": torch.from_numpy(obs["pixels"][c]).permute(0, 3, 1, 2).float() / 255.0
        for c in ("front", "wrist")
    }
    batch |= {"observation.state": torch.from_numpy(obs["agent_pos"]), "task": obs["instruction"]}
    p = policy.processor
    a, b = p(p.raw_from_env(obs)), p(p.raw_from_dataset(batch))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


@pytest.mark.parametrize("head", sorted(HEADS))
def test_checkpoint_round_trip_gives_identical_actions(head, tmp_path):
    policy = _policy(head).eval()
    out = save_policy(policy, tmp_path / "ckpt")
    loaded = load_policy(out).eval()
    obs = _obs(2, seed=5)
    torch.manual_seed(0)
    a = policy.predict_action_chunk(obs)
    torch.manual_seed(0)
    b = loaded.predict_action_chunk(obs)
    assert torch.equal(a, b)


def test_checkpoint_feature_mismatch_names_both_sides(tmp_path):
    out = save_policy(_policy("l1_chunk"), tmp_path / "ckpt")
    feats = read_features(out)
    with pytest.raises(CheckpointError, match=r"state_dim 9 vs env state_dim 7"):
        check_features(feats, {"cameras": ["front", "wrist"], "state_dim": 7, "action_dim": 4}, "env")
    with pytest.raises(CheckpointError, match="cameras"):
        check_features(feats, {"cameras": ["corner"], "state_dim": 9, "action_dim": 4}, "dataset")
    with pytest.raises(CheckpointError, match="missing"):
        load_policy(tmp_path)


@pytest.mark.parametrize("head", ["l1_chunk", "flow_matching"])
def test_privileged_targets_train_auxiliary_losses_but_are_never_an_input(head):
    """With `privileged.target_goal` statistics, training adds the 3D and image-pointer losses (they fall on a
    fixed batch, and the pointers move toward the true image coordinates); rollout needs nothing privileged;
    a batch without the key trains on the action loss alone."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    stats = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * n, "std": [0.1] * n}}
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=head)), stats)
    assert policy.dims.aux_dim == 6 and policy.dims.aux_points == 2
    priv = torch.rand(B, n, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8  # all points in view
    batch = _batch() | {PRIVILEGED_KEY: priv}
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    history = []
    for _ in range(20):
        loss, metrics = policy(batch)
        total = metrics.get("l1", metrics.get("flow_mse")) + metrics["aux_l1"] + metrics["uv_l1"]
        assert loss.item() == pytest.approx(total, rel=1e-5)
        history.append(metrics)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1]["aux_l1"] < 0.85 * history[0]["aux_l1"]
    assert history[-1]["uv_l1"] < 0.8 * history[0]["uv_l1"]
    _, metrics = policy(_batch())  # no privileged key: action loss only
    assert "aux_l1" not in metrics and "uv_l1" not in metrics
    policy.eval()
    assert policy.predict_action_chunk(_obs()).shape == (2, H, A)  # env observations carry no ground truth


def test_pointer_token_cross_entropy_picks_the_token_nearest_the_target():
    from vla.heads.grounding import TargetPointers

    # one camera, a 2 x 2 grid of tokens at (+-0.5, +-0.5), one more token on another camera
    coords = torch.tensor([[[-0.5, -0.5, 1, 0], [0.5, -0.5, 1, 0], [-0.5, 0.5, 1, 0], [0.5, 0.5, 1, 0]]])
    coords = torch.cat([coords, torch.tensor([[[0.4, 0.4, 0, 1]]])], dim=1)  # [1, 5, 4]
    target = torch.tensor([[[[0.4, 0.45], [2.0, 2.0]]]])  # [B=1, P=1, C=2, 2]: camera 1 out of view
    right = torch.full((1, 1, 2, 5), -20.0)
    right[..., 3] = 0.0  # all mass on token 3, the one nearest (0.4, 0.45) on camera 0
    wrong = torch.full((1, 1, 2, 5), -20.0)
    wrong[..., 0] = 0.0
    ce = [TargetPointers.token_ce(torch.log_softmax(x, -1), coords, target) for x in (right, wrong)]
    assert float(ce[0]) < 1e-6 and float(ce[1]) > 10  # camera 1 (out of view) counts for nothing
    assert TargetPointers.token_ce(right, coords, None) is None


@pytest.mark.parametrize("pos_keys", [False, True])
def test_pointer_position_keys_let_a_query_choose_a_token_by_where_it_is(pos_keys):
    """Image tokens whose hidden states are all alike (no absolute position in Qwen2.5-VL's hidden states):
    only position-aware keys can point at "the leftmost" or "the rightmost" token, as the query asks."""
    from vla.features import BackboneFeatures
    from vla.heads.grounding import TargetPointers

    torch.manual_seed(0)
    d, side = 16, 4
    c = (torch.arange(side) + 0.5) / side * 2 - 1  # token centres in [-1, 1]
    xy = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(1, -1, 2).expand(2, -1, -1)  # [2, S, 2]
    coords = torch.cat([xy, torch.ones(2, side * side, 1)], -1)  # [2, S, 3]: one camera
    feats = BackboneFeatures(
        hidden_states=[torch.randn(1, 1, d).expand(2, side * side, d)],  # the same vector at every token
        attention_mask=torch.ones(2, side * side),
        query_start=side * side,
        token_coords=coords,
        image_mask=torch.ones(2, side * side, dtype=torch.bool),
    )
    q0 = torch.eye(2, d)  # two instructions: leftmost, rightmost
    target = torch.tensor([[-0.75, 0.0], [0.75, 0.0]]).view(2, 1, 1, 2)  # [B, P=1, C=1, 2]
    ptr = TargetPointers(d, 1, 1, 1, pos_keys=pos_keys)
    opt = torch.optim.Adam(ptr.parameters(), lr=0.05)
    for _ in range(150):
        loss = TargetPointers.uv_loss(ptr(q0, feats)[0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if pos_keys:
        assert float(loss) < 0.15
    else:  # uniform attention: the grid centre for both instructions, 0.75 from either target
        assert float(loss) > 0.7


@pytest.mark.parametrize("offsets", [False, True])
def test_pointer_offsets_reach_below_the_token_grid(offsets):
    """An object sits off its token's centre by up to 0.2 (tokens are 0.5 apart) and its token's hidden state
    says by how much: a soft-argmax over token centres cannot follow (its other tokens are all alike, so
    spreading attention only pulls towards the grid's middle), per-token offsets read it off, also in new
    scenes."""
    from vla.features import BackboneFeatures
    from vla.heads.grounding import TargetPointers

    d, side = 16, 4
    c = (torch.arange(side) + 0.5) / side * 2 - 1
    xy = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # [S, 2]

    def scenes(n, gen):
        emb = torch.randn(2, d, generator=torch.Generator().manual_seed(0))  # background, object
        where = torch.randn(2, d, generator=torch.Generator().manual_seed(1))  # how a token says its offset
        k = torch.randint(0, side * side, (n,), generator=gen)
        off = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.2  # [n, 2]
        h = emb[0].expand(n, side * side, d).clone()  # [n, S, D]
        h[torch.arange(n), k] = emb[1] + off @ where
        feats = BackboneFeatures(
            hidden_states=[h],
            attention_mask=torch.ones(n, side * side),
            query_start=side * side,
            token_coords=torch.cat([xy.expand(n, -1, -1), torch.ones(n, side * side, 1)], -1),
            image_mask=torch.ones(n, side * side, dtype=torch.bool),
        )
        return feats, (xy[k] + off).view(n, 1, 1, 2)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    train_f, train_t = scenes(512, gen)
    test_f, test_t = scenes(256, torch.Generator().manual_seed(3))
    ptr = TargetPointers(d, 1, 1, 1, offsets=offsets)
    opt = torch.optim.Adam(ptr.parameters(), lr=1e-2)
    for _ in range(200):
        loss = TargetPointers.uv_loss(ptr(torch.ones(512, d), train_f)[0], train_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = float(TargetPointers.uv_loss(ptr(torch.ones(256, d), test_f)[0], test_t))
    if offsets:
        assert err < 0.05
    else:  # |u| + |v| of the offsets averages 0.2
        assert err > 0.12


def test_pointer_ce_adds_a_falling_term_to_the_loss():

    policy, batch = _grounded_policy({"pointer_ce": 0.5})
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    history = []
    for _ in range(20):
        loss, m = policy(batch)
        assert loss.item() == pytest.approx(m["l1"] + m["aux_l1"] + m["uv_l1"] + 0.5 * m["uv_ce"], rel=1e-5)
        history.append(m["uv_ce"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1] < 0.8 * history[0]


def test_pointer_targets_follow_the_policy_cameras():
    """The image coordinates of each (point, camera) come from that camera's columns, in the policy's camera
    order; a camera the privileged state lacks is out of view (masked out of the loss)."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES, privileged_uv_index

    n = len(PRIVILEGED_NAMES)
    stats = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * n, "std": [1.0] * n}}
    proc = _policy("l1_chunk", cameras=["wrist", "front"]).processor
    proc = type(proc)(proc.hf, ["wrist", "front"], "{instruction}", stats, ("mean_std", "mean_std"))
    priv = torch.arange(n, dtype=torch.float32)[None] / 100
    aux = proc.aux_targets(priv)
    i = privileged_uv_index("goal", "front")
    assert aux["uv"][0, 1, 1].tolist() == pytest.approx(priv[0, i : i + 2].tolist())
    i = privileged_uv_index("target", "wrist")
    assert aux["uv"][0, 0, 0].tolist() == pytest.approx(priv[0, i : i + 2].tolist())
    assert aux["xyz"].shape == (1, 6)
    bad = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * 6, "std": [1.0] * 6}}
    with pytest.raises(StatsError, match="re-record"):
        type(proc)(proc.hf, ["front"], "{instruction}", bad, ("mean_std", "mean_std"))


@pytest.mark.parametrize("first", [False, True])
def test_instruction_first_makes_image_features_depend_on_the_instruction(first, tmp_path):
    policy = _policy("l1_chunk", instruction_first=first).eval()
    p, obs = policy.processor, _obs(1)
    ids, hidden, first_img = [], [], []
    for instruction in ("pick up the cube", "touch the red ball"):
        inputs = policy._to_device(p(p.raw_from_env(obs | {"instruction": [instruction]})))
        feats = policy._features(inputs)
        img = feats.image_mask[0]  # [S]
        hidden.append(feats.hidden_states[-1][0, img])  # [N_img, D]
        ids.append(inputs["input_ids"][0].tolist())
        first_img.append(int(img.nonzero()[0]))
    differs = next(i for i, (a, b) in enumerate(zip(*ids, strict=False)) if a != b)  # instruction start
    assert (differs < first_img[0]) == first  # the prompt sits before / after the images
    assert torch.equal(hidden[0], hidden[1]) != first  # causal LM: only text-first conditions the images
    loaded = load_policy(save_policy(policy, tmp_path / "ckpt"))
    assert loaded.processor.instruction_first == first


def test_film_starts_as_identity_then_conditions_each_rows_images_on_its_own_instruction(tmp_path):
    plain, film = _policy("l1_chunk").eval(), _policy("l1_chunk", film=True).eval()
    film.backbone.load_state_dict(plain.backbone.state_dict())
    film.head.load_state_dict(plain.head.state_dict())
    obs = _obs(2)
    torch.testing.assert_close(film.predict_action_chunk(obs), plain.predict_action_chunk(obs))  # zero init

    torch.nn.init.normal_(film.film.out.weight, std=0.5)  # as if trained

    def image_hidden(policy, instructions):  # [B, N_img, D] of the last layer at the image tokens
        p = policy.processor
        inputs = policy._to_device(p(p.raw_from_env(obs | {"instruction": instructions})))
        feats = policy._features(inputs)
        return torch.stack([feats.hidden_states[-1][i, feats.image_mask[i]] for i in range(2)])

    a = image_hidden(film, ["pick up the cube", "touch the red ball"])
    b = image_hidden(film, ["pick up the cube", "touch the blue ball"])
    assert torch.equal(a[0], b[0])  # row 0's images follow row 0's instruction only
    assert not torch.allclose(a[1], b[1], atol=1e-4)  # the image tokens (before any text) see the words
    assert torch.equal(
        image_hidden(plain, ["a", "touch the red ball"])[1],
        image_hidden(plain, ["a", "touch the blue ball"])[1],
    )  # without FiLM they cannot

    loss, _ = film(_batch())
    loss.backward()
    assert film.film.out.weight.grad.abs().sum() > 0  # trained by the policy loss
    loaded = load_policy(save_policy(film, tmp_path / "ckpt"))
    assert loaded.cfg.film and torch.equal(loaded.film.out.weight, film.film.out.weight)
    torch.testing.assert_close(loaded.predict_action_chunk(obs), film.predict_action_chunk(obs))


def _anchor_scenes(n: int, gen: torch.Generator, emb: torch.Tensor, side: int = 4):
    """One camera, side x side tokens whose hidden states say only what is there (empty / anchor / candidate,
    `emb` rows): an anchor and two candidates on random tokens; the target is the candidate closest to the
    anchor (by >= 0.3). -> features and target (u, v) [n, 1, 1, 2]."""
    from vla.features import BackboneFeatures

    c = (torch.arange(side) + 0.5) / side * 2 - 1
    xy = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # [S, 2]
    s, d = side * side, emb.shape[1]
    hs, targets = [], []
    while len(targets) < n:
        a, c1, c2 = torch.randperm(s, generator=gen)[:3]
        d1, d2 = (xy[c1] - xy[a]).norm(), (xy[c2] - xy[a]).norm()
        if abs(d1 - d2) < 0.3:
            continue
        h = emb[0].expand(s, d).clone()  # [S, D]
        h[a], h[c1], h[c2] = emb[1], emb[2], emb[2]
        hs.append(h)
        targets.append(xy[c1] if d1 < d2 else xy[c2])
    coords = torch.cat([xy[None].expand(n, -1, -1), torch.ones(n, s, 1)], -1)  # [n, S, 3]
    feats = BackboneFeatures(
        hidden_states=[torch.stack(hs)],
        attention_mask=torch.ones(n, s),
        query_start=s,
        token_coords=coords,
        image_mask=torch.ones(n, s, dtype=torch.bool),
    )
    return feats, torch.stack(targets).view(n, 1, 1, 2)


@pytest.mark.parametrize("hops", [0, 1])
def test_pointer_hops_find_the_candidate_closest_to_an_anchor_in_new_scenes(hops):
    """ "The cube closest to the blue ball": one query state for every scene, so a one-step pointer (even with
    position keys) cannot know where the anchor is and picks a candidate at random; one relational hop reads
    the anchor's position into the query and points at the right candidate in scenes it never saw."""
    from vla.features import BackboneFeatures
    from vla.heads.grounding import TargetPointers

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    d = 32
    emb = torch.randn(3, d, generator=gen)
    train_f, train_t = _anchor_scenes(1024, gen, emb)
    test_f, test_t = _anchor_scenes(256, torch.Generator().manual_seed(99), emb)
    ptr = TargetPointers(d, 1, 1, 1, pos_keys=True, hops=hops)
    opt = torch.optim.Adam(ptr.parameters(), lr=3e-3)
    for _ in range(150):
        j = torch.randint(0, 1024, (64,), generator=gen)
        f = BackboneFeatures([train_f.hidden_states[0][j]], train_f.attention_mask[j], 16)
        f.token_coords, f.image_mask = train_f.token_coords[j], train_f.image_mask[j]
        loss = TargetPointers.uv_loss(ptr(torch.ones(64, d), f)[0], train_t[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = float(TargetPointers.uv_loss(ptr(torch.ones(256, d), test_f)[0], test_t))
    if hops:
        assert err < 0.15
    else:  # the two candidates are ~1 apart: a random pick (or their mean) is ~0.4 off
        assert err > 0.3


def test_pointer_hops_need_position_keys_and_train_inside_the_policy():
    with pytest.raises(ValueError, match="pointer_hops=2 needs pointer_pos=true"):
        _grounded_policy({"pointer_hops": 2})
    policy, batch = _grounded_policy({"pointer_hops": 1, "pointer_pos": True})
    assert policy.head.grounding.pointers.hops is not None
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    history = []
    for _ in range(15):
        loss, m = policy(batch)
        history.append(m["uv_l1"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1] < 0.8 * history[0]
    policy.eval()
    assert policy.predict_action_chunk(_obs()).shape == (2, H, A)


def _leftmost_cube_scenes(n: int, gen: torch.Generator, emb: torch.Tensor, s: int = 12):
    """Scenes of s image tokens at random places in one camera, each a "cube" or a "ball" (content only, no
    position, as Qwen2.5-VL's hidden states) -> features and which token is the leftmost cube [N]."""
    from vla.features import BackboneFeatures

    kind = torch.randint(0, 2, (n, s), generator=gen)  # 0 = cube, 1 = ball
    kind[:, 0] = 0  # at least one cube
    hidden = emb[kind] + 0.1 * torch.randn(n, s, emb.shape[1], generator=gen)  # [N, S, D]
    uv = torch.rand(n, s, 2, generator=gen) * 2 - 1  # [N, S, 2]
    coords = torch.cat([uv, torch.ones(n, s, 1)], dim=-1)  # [N, S, 2 + 1 camera]
    leftmost = torch.where(kind == 0, uv[..., 0], torch.full_like(uv[..., 0], 9.0)).argmin(1)  # [N]
    mask = torch.ones(n, s, dtype=torch.bool)
    return BackboneFeatures([hidden], mask.long(), s, coords, mask), leftmost


def test_token_neck_starts_as_the_identity_and_writes_relations_into_the_tokens():
    """`head.kwargs.token_neck`: a new neck leaves the tokens exactly as they were (text tokens always), and
    trained with a per-token probe it makes each token say "I am the leftmost cube" in scenes it never saw --
    which the causal, position-free tokens alone cannot (a probe on them can only say "cube")."""
    from vla.features import BackboneFeatures
    from vla.heads.grounding import TargetPointers

    gen = torch.Generator().manual_seed(0)
    d, s = 32, 12
    feats, _ = _leftmost_cube_scenes(4, gen, torch.randn(2, d, generator=gen), s)
    feats.image_mask[:, :3] = False  # three text tokens
    torch.manual_seed(0)
    ptr = TargetPointers(d, 1, 1, 1, neck=1)
    with torch.no_grad():
        torch.testing.assert_close(ptr.tokens(feats), ptr.mix(feats.hidden_states), rtol=0, atol=0)

    def balanced_accuracy(neck: int) -> float:
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        emb = torch.randn(2, d, generator=gen)
        train_f, train_y = _leftmost_cube_scenes(2048, gen, emb, s)
        test_f, test_y = _leftmost_cube_scenes(512, torch.Generator().manual_seed(9), emb, s)
        ptr, probe = TargetPointers(d, 1, 1, 1, neck=neck), torch.nn.Linear(d, 1)
        opt = torch.optim.Adam([*ptr.parameters(), *probe.parameters()], lr=3e-3)
        for _ in range(400):
            j = torch.randint(0, 2048, (64,), generator=gen)
            f = BackboneFeatures(
                [train_f.hidden_states[0][j]],
                train_f.attention_mask[j],
                s,
                train_f.token_coords[j],
                train_f.image_mask[j],
            )
            logits = probe(ptr.tokens(f)).squeeze(-1)  # [B, S]
            y = torch.nn.functional.one_hot(train_y[j], s).float()  # [B, S]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y, pos_weight=torch.tensor(s - 1.0)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            said = probe(ptr.tokens(test_f)).squeeze(-1) > 0  # [N, S]
        y = torch.nn.functional.one_hot(test_y, s).bool()
        return 0.5 * float(said[y].float().mean() + (~said[~y]).float().mean())

    assert balanced_accuracy(neck=0) < 0.8  # "is a cube": right on the leftmost, wrong on the other cubes
    assert balanced_accuracy(neck=1) > 0.95


def test_token_neck_is_validated_and_trains_inside_the_policy():
    with pytest.raises(ValueError, match="token_neck=-1 is a number of encoder layers"):
        _grounded_policy({"token_neck": -1})
    policy, batch = _grounded_policy({"pointer_pos": True, "pointer_hops": 1, "token_neck": 1})
    neck = policy.head.grounding.pointers.neck
    assert neck is not None
    before = {k: v.clone() for k, v in neck.state_dict().items()}
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    for _ in range(3):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(before[k], v) for k, v in neck.state_dict().items())  # the losses reach it
    policy.eval()
    assert policy.predict_action_chunk(_obs()).shape == (2, H, A)


@pytest.mark.parametrize("head", ["l1_chunk", "flow_matching"])
def test_oracle_grounding_feeds_the_true_positions_to_the_decoder_only_when_asked(head):
    """The diagnostic of `svla-eval oracle_grounding=true`: off, privileged state in the observation changes
    nothing; on, the chunk follows the true target/goal positions, and the decoder's grounding features are
    those positions (the head's own guess only for a camera that does not see the point)."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import OUT_OF_VIEW, PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    stats = STATS | {PRIVILEGED_KEY: {"mean": [0.0] * n, "std": [0.1] * n}}
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=head)), stats).eval()
    rng = np.random.default_rng(3)
    priv = [rng.uniform(-0.8, 0.8, (2, n)).astype(np.float32) for _ in range(2)]

    def chunk(p):
        obs = _obs() if p is None else _obs() | {"privileged_state": p}
        torch.manual_seed(1)  # flow matching samples its noise
        return policy.predict_action_chunk(obs)

    plain = chunk(None)
    assert torch.equal(chunk(priv[0]), plain)  # off: never read
    policy.oracle_grounding = True
    with pytest.raises(ValueError, match="oracle_grounding needs"):
        chunk(None)
    a, b = chunk(priv[0]), chunk(priv[1])
    assert not torch.allclose(a, plain) and not torch.allclose(a, b)

    inputs = policy.processor(policy.processor.raw_from_env(_obs() | {"privileged_state": priv[0]}))
    aux = inputs["aux"]
    aux["uv"][0, 1, 1] = OUT_OF_VIEW  # the goal not in the wrist camera of row 0
    feats = policy._features(inputs)
    q = policy.head.mix(feats.queries)  # [B, Q, D]
    extra = policy.head.keypoints(q, feats)[:, 0] if head == "l1_chunk" else None
    pred, found = policy.head.grounding(q[:, 0], feats, extra, oracle=aux)
    uv = found[:, : aux["uv"].numel() // 2].view_as(aux["uv"])  # [B, P, C, 2]
    assert torch.equal(uv[1], aux["uv"][1]) and torch.equal(uv[0, 0], aux["uv"][0, 0])
    assert torch.equal(uv[0, 1, 1], pred["uv"][0, 1, 1])  # out of view: the head's own guess
    assert torch.equal(found[:, -aux["xyz"].shape[1] :], aux["xyz"])


@pytest.mark.parametrize("head", ["l1_chunk", "flow_matching"])
def test_rollout_grounding_error_is_the_metric_distance_of_the_heads_own_prediction(head):
    """`svla-eval` measures perception at rollout: with the privileged state in the observation, each
    prediction sets `last_grounding_error` [B, P] = metres between the head's own 3D target/goal and the true
    ones (0 when the truth equals the prediction, 3 cm when the target is moved 3 cm), without changing the
    chunk; without it, None."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    mean, std = [0.2] * n, [0.1] * n
    stats = STATS | {PRIVILEGED_KEY: {"mean": mean, "std": std}}
    torch.manual_seed(0)
    policy = SpatialVLAPolicy(PolicyConfig(head=HeadConfig(name=head)), stats).eval()

    def predict(priv):
        torch.manual_seed(1)  # flow matching samples its noise
        return policy.predict_action_chunk(_obs() if priv is None else _obs() | {"privileged_state": priv})

    plain = predict(None)
    assert policy.last_grounding_error is None
    inputs = policy.processor(policy.processor.raw_from_env(_obs()))
    _, own = policy.head.predict_with_grounding(policy._features(inputs), inputs["state"])  # [B, 6]
    priv = np.zeros((2, n), dtype=np.float32)
    priv[:, :6] = own.detach().numpy() * 0.1 + 0.2  # the head's own prediction, in metres
    assert torch.equal(predict(priv), plain)  # measured, never acted on
    assert policy.last_grounding_error.shape == (2, 2)
    assert np.allclose(policy.last_grounding_error, 0.0, atol=1e-5)
    priv[:, 0] += 0.03  # the target 3 cm away along x
    predict(priv)
    assert np.allclose(policy.last_grounding_error[:, 0], 0.03, atol=1e-5)
    assert np.allclose(policy.last_grounding_error[:, 1], 0.0, atol=1e-5)


@pytest.mark.parametrize("xyz_state", [False, True])
def test_xyz_state_lets_the_3d_prediction_read_where_the_wrist_camera_is(xyz_state):
    """`xyz_state=true`: the 3D target/goal prediction reads the proprio state (the wrist camera's pose), so
    the same images with the arm elsewhere give another prediction; off, the state cannot reach it."""
    policy, batch = _grounded_policy({"xyz_state": xyz_state, "motion": True})
    policy.eval()
    inputs = policy.processor(policy.processor.raw_from_dataset(batch))
    feats = policy._features(inputs)
    moved = inputs["state"] + 1.0
    with torch.no_grad():
        a = policy.head.predict_with_grounding(feats, inputs["state"])[1]
        b = policy.head.predict_with_grounding(feats, moved)[1]
    assert a.shape == (B, 6)
    assert torch.allclose(a, b) != xyz_state


def test_ee_relative_features_are_the_points_minus_the_end_effector_in_metric_units():
    """`ee_relative=true`: the decoder reads (target - ee) and (goal - ee) in decimetres, computed from the
    normalized predictions and state with the dataset statistics (not from the normalized values)."""
    from envs.record import PRIVILEGED_KEY
    from envs.tasks.base import PRIVILEGED_NAMES

    n = len(PRIVILEGED_NAMES)
    rng = np.random.default_rng(0)
    p_mean, p_std = rng.normal(size=n).tolist(), rng.uniform(0.05, 0.2, n).tolist()
    s_mean, s_std = rng.normal(size=S).tolist(), rng.uniform(0.05, 0.2, S).tolist()
    stats = STATS | {
        PRIVILEGED_KEY: {"mean": p_mean, "std": p_std},
        "observation.state": STATS["observation.state"] | {"mean": s_mean, "std": s_std},
    }
    torch.manual_seed(0)
    head = HeadConfig(name="l1_chunk", kwargs={"ee_relative": True})
    policy = SpatialVLAPolicy(PolicyConfig(head=head), stats)
    g = policy.head.grounding
    xyz_n, state_n = torch.randn(2, 6), torch.randn(2, S)
    xyz_m = xyz_n * torch.tensor(p_std[:6]) + torch.tensor(p_mean[:6])  # metres
    ee_m = state_n[:, :3] * torch.tensor(s_std[:3]) + torch.tensor(s_mean[:3])
    want = torch.cat([xyz_m[:, :3] - ee_m, xyz_m[:, 3:] - ee_m], dim=1) * 10
    assert torch.allclose(g.relative(xyz_n, state_n), want, atol=1e-5)
    assert not any("xyz_center" in k for k in policy.state_dict())  # from the statistics, never stale weights
    priv = torch.rand(B, n, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    loss, m = policy(_batch() | {PRIVILEGED_KEY: priv})
    loss.backward()
    assert math.isfinite(m["loss"]) and policy.head.mlp[0].in_features == policy.head.mlp[0].weight.shape[1]


def test_teacher_forcing_feeds_true_positions_to_a_share_of_training_rows_only():
    from vla.features import BackboneFeatures
    from vla.heads.base import HeadDims
    from vla.heads.grounding import Grounding

    torch.manual_seed(0)
    b, d, s = 64, 16, 8
    dims = HeadDims(hidden=d, num_layers_read=1, chunk=H, action_dim=A, state_dim=S, n_cameras=1, aux_dim=6)
    dims.aux_points = 2
    coords = torch.cat([torch.rand(b, s, 2) * 2 - 1, torch.ones(b, s, 1)], -1)
    feats = BackboneFeatures(
        [torch.randn(b, s, d)], torch.ones(b, s), s, coords, torch.ones(b, s, dtype=torch.bool)
    )
    teacher = {"uv": torch.rand(b, 2, 1, 2) * 2 - 1, "xyz": torch.randn(b, 6)}
    with pytest.raises(ValueError, match="teacher_forcing=1.5"):
        Grounding(dims, teacher_forcing=1.5)
    g = Grounding(dims, teacher_forcing=0.5).train()
    pred, found = g(torch.randn(b, d), feats, teacher=teacher)
    xyz = found[:, -6:]
    true_rows = (xyz == teacher["xyz"]).all(1)
    assert 10 < int(true_rows.sum()) < 54  # about half the rows
    assert torch.equal(xyz[~true_rows], pred["xyz"][~true_rows])
    uv = found[:, :4].view(b, 2, 1, 2)
    assert torch.equal(uv[true_rows], teacher["uv"][true_rows]) and torch.equal(
        uv[~true_rows], pred["uv"][~true_rows]
    )
    g.eval()  # never at rollout
    pred, found = g(torch.randn(b, d), feats, teacher=teacher)
    assert torch.equal(found[:, -6:], pred["xyz"])


def _scene_objects(n: int) -> torch.Tensor:
    """`privileged.objects` of n real Reach scenes (seeds 0..n-1) [n, O]."""
    import envs

    env = envs.make("svla/Reach-v0", cameras=())
    try:
        return torch.as_tensor(np.stack([env.reset(seed=s)[1]["privileged_objects"] for s in range(n)]))
    finally:
        env.close()


@pytest.mark.parametrize("attr_match", [False, True])
def test_object_probe_learns_what_each_token_holds(attr_match):
    """`head.kwargs.object_attrs`: a probe on the pointers' tokens is trained on the recorded objects (its
    loss is reported and falls on a fixed batch) and is not run at rollout unless the pointers match
    attributes (`attr_match`, whose wished-for attributes learn the target's too); a batch without objects is
    an error that names the fix."""
    from envs.record import OBJECTS_KEY

    kwargs = {"pointer_pos": True, "object_attrs": 1.0, "attr_match": attr_match}
    policy, batch = _grounded_policy(kwargs)
    objects = _scene_objects(B)
    # the privileged target of each row is its scene's first object (a real object: its wishes are labelled)
    from envs.tasks.base import OBJECT_FIELDS

    batch["privileged.target_goal"][:, :3] = objects[:, 4:7]
    assert OBJECT_FIELDS[4:7] == ("x", "y", "z")
    batch = batch | {OBJECTS_KEY: objects}
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, metrics = policy(batch)
        first = first if first is not None else metrics
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = policy(batch)[1]
    assert last["obj_bce"] < 0.5 * first["obj_bce"]
    assert ("wish_bce" in last) == attr_match
    if attr_match:
        assert last["wish_bce"] < 0.5 * first["wish_bce"]
    probe = policy.head.grounding.obj_probe
    assert probe.weight.grad is not None and probe.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="object_attrs=0"):
        policy({k: v for k, v in batch.items() if k != OBJECTS_KEY})
    policy.eval()
    with torch.no_grad():
        calls = []
        handle = probe.register_forward_hook(lambda *a: calls.append(1))
        chunk = policy.predict_action_chunk(_obs())
        handle.remove()
    assert chunk.shape == (2, H, A) and bool(calls) == attr_match


@pytest.mark.parametrize("attr_dim", [0, 4])
def test_attribute_matched_pointers_pick_the_token_with_the_wished_attribute(attr_dim):
    """Token states that say nothing usable (noise), tokens' attribute probabilities that do (one attribute
    per token, four kinds), and an instruction naming one kind: only attribute matching points at the token
    holding it, also in new scenes."""
    from vla.features import BackboneFeatures
    from vla.heads.grounding import TargetPointers

    d, side, k = 16, 4, 4
    c = (torch.arange(side) + 0.5) / side * 2 - 1
    xy = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # [S, 2]

    def scenes(n, gen):
        s = side * side
        kinds = torch.stack(
            [torch.randperm(s, generator=gen)[:k] for _ in range(n)]
        )  # [n, k] token of kind j
        attrs = torch.zeros(n, s, k)
        attrs[torch.arange(n)[:, None], kinds, torch.arange(k)] = 1.0
        want = torch.randint(0, k, (n,), generator=gen)
        feats = BackboneFeatures(
            hidden_states=[torch.randn(n, s, d, generator=gen)],
            attention_mask=torch.ones(n, s),
            query_start=s,
            token_coords=torch.cat([xy.expand(n, -1, -1), torch.ones(n, s, 1)], -1),
            image_mask=torch.ones(n, s, dtype=torch.bool),
        )
        q0 = torch.nn.functional.one_hot(want, d).float()  # [n, D]: the instruction names kind `want`
        return q0, feats, attrs, xy[kinds[torch.arange(n), want]].view(n, 1, 1, 2)

    torch.manual_seed(0)
    q0, feats, attrs, target = scenes(512, torch.Generator().manual_seed(2))
    tq, tf, ta, tt = scenes(256, torch.Generator().manual_seed(3))
    ptr = TargetPointers(d, 1, 1, 1, attr_dim=attr_dim)
    opt = torch.optim.Adam(ptr.parameters(), lr=3e-2)
    for _ in range(200):
        loss = TargetPointers.uv_loss(ptr(q0, feats, attrs if attr_dim else None)[0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = float(TargetPointers.uv_loss(ptr(tq, tf, ta if attr_dim else None)[0], tt))
    if attr_dim:
        assert err < 0.1
    else:  # random tokens: no better than the grid's middle (|u| + |v| averages 1.0)
        assert err > 0.6
