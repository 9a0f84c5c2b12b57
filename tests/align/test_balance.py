"""Balancing moves: the 3D hand after the move projects onto the image after the matching affine.

Rotation is exact for every joint; depth scaling is exact for the wrist and for hands lying in a
fronto-parallel plane, and leaves a bounded parallax residual otherwise (beingh0/align/balance.py),
which ``max_parallax_px`` caps per draw.
"""
import math

import numpy as np
import pytest
import torch

from beingh0.align import (OFFICIAL_TARGET, BalanceConfig, BalanceParams, HandState, Intrinsics, align_matrix,
                           balance_affine, check_rules, draw_balance, project_points, transform_mano, transform_points)
from beingh0.mano.model import ManoModel
from beingh0.testing import random_pose

from .test_geometry import random_camera

K_FRAME = OFFICIAL_TARGET.frame.K


@pytest.fixture(scope="module")
def hands():
    """24 random right hands: pose (24, 48), trans (24, 3), keypoints (24, 21, 3)."""
    n = 24
    g = torch.Generator().manual_seed(7)
    pose = random_pose(n, 5, mix=False)
    z = torch.empty(n, dtype=torch.float64).uniform_(0.4, 0.8, generator=g)
    xy = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * z[:, None] * torch.tensor([0.9, 0.6], dtype=torch.float64)
    trans = torch.cat([xy, z[:, None]], 1)
    model = ManoModel.embedded()
    kp = model.keypoints(global_orient=pose[:, :3], hand_pose=pose[:, 3:], trans=trans)
    return model, pose, trans, kp.numpy()


def _errors(model, pose, trans, kp, src: Intrinsics, params: BalanceParams):
    """Per-joint pixel distance between the post-move projections and the affine-mapped pre-move ones."""
    al = align_matrix(src, balance=balance_affine(params, K_FRAME))
    go2, tr2 = transform_mano(pose[:, :3], trans, params)
    kp2 = model.keypoints(global_orient=go2, hand_pose=pose[:, 3:], trans=tr2).numpy()
    np.testing.assert_allclose(kp2, transform_points(kp, trans.numpy(), params), atol=1e-12)  # MANO == rigid move
    warped = al.src_to_model(project_points(kp, src))
    return np.linalg.norm(warped - project_points(kp2, al.K_model), axis=-1), al


@pytest.mark.parametrize("distorted", [False, True])
def test_alignment_plus_rotation_is_exact(hands, distorted):
    model, pose, trans, kp = hands
    rng = np.random.default_rng(3)
    for angle in (0.4, -1.1, math.pi):
        err, _ = _errors(model, pose, trans, kp, random_camera(rng, distorted), BalanceParams(1.0, angle))
        assert err.max() < 1e-6, err.max()


def test_depth_scaling_wrist_exact_joints_bounded(hands):
    model, pose, trans, kp = hands
    src = Intrinsics(1100.0, 1090.0, 955.0, 545.0, 1920, 1080)
    t = trans.numpy()
    for s in (0.8, 1.25):
        err, al = _errors(model, pose, trans, kp, src, BalanceParams(s, 0.0))
        assert err[:, 0].max() < 1e-6                                     # the wrist: exact
        # the rest: the parallax residual |u' - c| |s - 1| |dz| / (s (z + dz)), in model pixels (exact formula)
        dz = kp[..., 2] - t[:, None, 2]
        uv = project_points(transform_points(kp, t, BalanceParams(s, 0.0)), al.K_model)
        c = np.array([al.K_model.cx, al.K_model.cy])
        predicted = np.linalg.norm(uv - c, axis=-1) * abs(s - 1) * np.abs(dz) / (s * (t[:, None, 2] + dz))
        np.testing.assert_allclose(err, predicted, atol=1e-6)
        assert err.max() > 0.5                         # a real residual for these (random, often tilted) hands
        # scaling trans along its ray (s * trans) would not stay on the content: the wrist alone is off by pixels
        kp_ray = kp + (s - 1) * t[:, None, :]
        err_ray = np.linalg.norm(al.src_to_model(project_points(kp, src)) - project_points(kp_ray, al.K_model), axis=-1)
        assert np.median(err_ray[:, 0]) > 5.0


def test_depth_scaling_is_exact_for_a_fronto_parallel_hand(hands):
    _, _, trans, kp = hands
    flat = kp.copy()
    flat[..., 2] = trans.numpy()[:, None, 2]                                # every joint at the wrist's depth
    src = Intrinsics(700.0, 700.0, 640.0, 360.0, 1280, 720)
    for p in (BalanceParams(0.8, 0.3), BalanceParams(1.25, -0.5)):
        al = align_matrix(src, balance=balance_affine(p, K_FRAME))
        moved = transform_points(flat, trans.numpy(), p)
        err = np.linalg.norm(al.src_to_model(project_points(flat, src)) - project_points(moved, al.K_model), axis=-1)
        assert err.max() < 1e-6


def test_draws_under_the_rules_stay_within_half_a_pixel(hands):
    """Alignment + depth scaling + rotation combined: accepted draws keep every joint within 0.5 px."""
    model, pose, trans, kp = hands
    cfg = BalanceConfig(max_parallax_px=0.5, depth_range=(0.2, 1.2))
    rng = np.random.default_rng(11)
    t = trans.numpy()
    moved_any = 0
    for i in range(len(t)):
        h = HandState(t[i:i + 1], kp[i:i + 1])
        d = draw_balance(rng, [h], cfg)
        src = random_camera(rng, distorted=bool(i % 2))
        err, _ = _errors(model, pose[i:i + 1], trans[i:i + 1], kp[i:i + 1], src, d.params)
        assert err.max() <= 0.5 + 1e-9, (i, d, err.max())
        moved_any += d.params.scale != 1.0
    assert moved_any >= len(t) // 2


def test_rules_keep_hands_in_frame_and_plausible(hands):
    _, _, trans, kp = hands
    cfg = BalanceConfig(margin_px=6.0, depth_range=(0.3, 0.9), angle_range=(-math.pi, math.pi), max_parallax_px=math.inf)
    rng = np.random.default_rng(0)
    t = trans.numpy()
    fallbacks = 0
    for i in range(0, len(t), 2):
        hs = [HandState(t[i:i + 1], kp[i:i + 1]), HandState(t[i + 1:i + 2], kp[i + 1:i + 2])]   # two hands
        d = draw_balance(rng, hs, cfg)
        fallbacks += d.fallback
        if d.fallback:
            continue
        A = align_matrix(OFFICIAL_TARGET.frame, balance=balance_affine(d.params, K_FRAME))
        for h in hs:
            before = project_points(h.keypoints, A.K_model)
            vis = np.all((before >= -0.5) & (before <= 447.5), -1)
            after = project_points(transform_points(h.keypoints, h.trans, d.params), A.K_model)[vis]
            assert np.all(after >= 6.0 - 0.5) and np.all(after <= 447.5 - 6.0)
            assert 0.3 <= d.params.scale * h.trans[0, 2] <= 0.9
    assert fallbacks < 4


def test_rules_reject_and_shrink():
    # a wrist near the right border, no keypoints: big rotations push its hand sphere out; shrinking finds a small move
    z = 0.5
    u = 1800.0
    t = np.array([[(u - 960) / 736.6339 * z, 0.0, z]])
    cfg = BalanceConfig(angle_range=(-math.pi, math.pi), scale_range=(0.5, 2.0), depth_range=(0.3, 0.7),
                        hand_radius=0.05, max_parallax_px=math.inf, max_tries=4)
    assert check_rules(BalanceParams(1.0, math.pi / 2), [HandState(t)], cfg) == "in frame"
    assert check_rules(BalanceParams(1.5, 0.0), [HandState(t)], cfg) == "depth"
    rng = np.random.default_rng(2)
    draws = [draw_balance(rng, [HandState(t)], cfg) for _ in range(30)]
    for d in draws:
        assert d.fallback or check_rules(d.params, [HandState(t)], cfg) is None
        assert 0.3 <= d.params.scale * z <= 0.7
    assert any(d.shrinks > 0 for d in draws)
    # a hand beyond the depth range: every move fails, the identity is the fallback
    far = draw_balance(rng, [HandState(np.array([[0.0, 0.0, 2.0]]))], cfg)
    assert far.fallback and far.params.is_identity


def test_transform_mano_types_and_global_orient():
    go = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float32)
    tr = torch.tensor([[0.1, 0.05, 0.5], [0.0, 0.0, 0.6]], dtype=torch.float32)
    p = BalanceParams(1.2, 0.7)
    go2, tr2 = transform_mano(go, tr, p)
    assert go2.dtype == torch.float32 and tr2.dtype == torch.float32 and go2.shape == (2, 3)
    np.testing.assert_allclose(go2[1].numpy(), [0, 0, 0.7], atol=1e-6)           # R_z * identity
    np.testing.assert_allclose(tr2[1].numpy(), [0, 0, 0.72], atol=1e-6)
    go3, tr3 = transform_mano(go.double().numpy(), tr.double().numpy(), p)
    assert isinstance(go3, np.ndarray) and go3.dtype == np.float64
    np.testing.assert_allclose(go3, go2.numpy(), atol=1e-6)


def test_config_validation():
    for bad in (dict(scale_range=(1.1, 1.3)), dict(angle_range=(0.2, 0.5)), dict(depth_range=(0.5, 0.2)),
                dict(margin_px=-1), dict(max_parallax_px=0), dict(shrink=1.5)):
        with pytest.raises(ValueError, match="invalid BalanceConfig"):
            BalanceConfig(**bad)
    with pytest.raises(ValueError, match="unknown BalanceConfig keys"):
        BalanceConfig.from_dict({"scale": 1.0})
    assert BalanceConfig.from_dict({"scale_range": [0.9, 1.1]}).scale_range == (0.9, 1.1)
