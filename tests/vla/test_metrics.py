"""Evaluation metrics against float64 references on random inputs."""
from math import comb

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.mano.model import hand_model
from beingh0.vla import metrics as M


def _params(rng, lead=(2, 5)):
    return {"global_orient": rng.normal(0, 0.5, (*lead, 3)), "hand_pose": rng.normal(0, 0.3, (*lead, 45)),
            "trans": rng.normal(0, 0.2, (*lead, 3)) + [0, 0, 0.6], "betas": rng.normal(0, 1, (lead[0], 10))}


def _umeyama(p, g):  # numpy float64 reference, one frame
    mp, mg = p.mean(0), g.mean(0)
    P, G = p - mp, g - mg
    U, S, Vt = np.linalg.svd(P.T @ G)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    D = np.diag([1, 1, d])
    R = Vt.T @ D @ U.T
    s = (S * np.diag(D)).sum() / (P ** 2).sum()
    return s * P @ R.T + mg


@pytest.mark.parametrize("side", ["left", "right"])
def test_motion_errors_match_reference(side):
    rng = np.random.default_rng(0)
    gt, pred = _params(rng), _params(rng)
    pred["betas"] = gt["betas"]
    mask = rng.random((2, 5)) > 0.3
    got = M.motion_errors(pred, gt, side, mask)
    model = hand_model(side)
    e, w, pa, n = 0.0, 0.0, 0.0, 0
    for b in range(2):
        for t in range(5):
            if not mask[b, t]:
                continue
            kp = lambda p: model.keypoints(torch.tensor(gt["betas"][b:b + 1]), torch.tensor(p["global_orient"][b, t][None]),
                                           torch.tensor(p["hand_pose"][b, t][None]), torch.tensor(p["trans"][b, t][None]))[0].numpy()
            kp_p, kp_g = kp(pred), kp(gt)
            e += np.linalg.norm(kp_p - kp_g, axis=-1).mean()
            pa += np.linalg.norm(_umeyama(kp_p, kp_g) - kp_g, axis=-1).mean()
            w += np.linalg.norm(pred["trans"][b, t] - gt["trans"][b, t])
            n += 1
    assert got["frames"] == n
    np.testing.assert_allclose([got["mpjpe"], got["mwte"], got["pa_mpjpe"]], [1000 * e / n, 1000 * w / n, 1000 * pa / n],
                               rtol=1e-9)
    assert got["pa_mpjpe"] < got["mpjpe"]
    same = M.motion_errors(gt, gt, side)
    assert same["mpjpe"] < 1e-9 and same["pa_mpjpe"] < 1e-6


def test_recall_at_k_matches_loop_reference():
    rng = np.random.default_rng(1)
    n = 40
    sim = rng.normal(size=(n, n))
    groups = rng.integers(0, 25, n)
    for k in (1, 3, 10):
        ref = 0
        for q in range(n):
            order = np.argsort(-sim[q], kind="stable")
            ref += int(any(groups[c] == groups[q] for c in order[:k]))
        assert M.recall_at_k(sim, k, groups) == pytest.approx(100 * ref / n)
    assert M.recall_at_k(np.eye(n) + 0.01 * sim, 1) == 100.0
    # pools: every pool is searched on its own
    pooled = M.recall_at_k(sim, 3, groups, pool=8, seed=3)
    perm = np.random.default_rng(3).permutation(n)
    ref = [M.recall_at_k(sim[np.ix_(p, p)], 3, groups[p]) for p in perm.reshape(5, 8)]
    assert pooled == pytest.approx(np.mean(ref))


def test_chance_recall():
    assert M.chance_recall_at_k(3, np.arange(32)) == pytest.approx(100 * 3 / 32)
    g = np.array([0, 0, 1, 2, 3, 4])
    ref = np.mean([1 - comb(6 - (2 if q < 2 else 1), 2) / comb(6, 2) for q in range(6)])
    assert M.chance_recall_at_k(2, g) == pytest.approx(100 * ref)
    # random similarities approach it
    rng = np.random.default_rng(0)
    r = np.mean([M.recall_at_k(rng.normal(size=(32, 32)), 3) for _ in range(100)])
    assert r == pytest.approx(100 * 3 / 32, abs=2.5)


def test_fid_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert M.fid(a, b) == pytest.approx(ref, rel=1e-8)
    assert M.fid(torch.tensor(a), a) == pytest.approx(0.0, abs=1e-8)
    # rank-deficient covariances (fewer samples than dims) stay finite and non-negative
    assert M.fid(rng.normal(size=(3, 8)), rng.normal(size=(4, 8))) >= 0


def test_valid_rate_and_bad_inputs():
    assert M.valid_rate([True, False, True, True]) == 75.0
    assert np.isnan(M.valid_rate([]))
    with pytest.raises(UserValueError, match="square"):
        M.recall_at_k(np.zeros((3, 4)), 1)
    with pytest.raises(UserValueError, match="at least 2"):
        M.fid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(UserValueError, match="one entry per query"):
        M.recall_at_k(np.zeros((3, 3)), 1, groups=[0, 1])
