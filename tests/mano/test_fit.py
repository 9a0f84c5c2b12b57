"""Tests of ``beingh0.mano.fit`` (the demo built on it: tests/mano/test_demo.py). Small T and few iterations: ~30 s."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from beingh0.mano.fit import (FitConfig, FitResult, chirality_scores, detect_chirality_flips, detect_swaps,
                              fit_file, fit_keypoints, interpolate_gaps, joint_limits)
from beingh0.mano.model import ManoModel
from beingh0.data.synth import grasp_motion

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dex_retargeting_human_hand" / "human_joint_right.npy"


@pytest.fixture(scope="module")
def model():
    return ManoModel.embedded("right")


@pytest.fixture(scope="module")
def seq(model):
    """20 frames (1.3 s at 15 FPS) of the synthetic reach-and-grasp from the moment the fingers close
    (the open, flat pre-shape before it has an ambiguous chirality); ground truth. The window's
    wrist moves gently: in windows with real-speed lifts (peak acceleration 12-20 mm/frame^2) the
    default trans-acceleration prior (w_acc_trans) biases the fitted wrist by ~3 mm."""
    full = grasp_motion(60, seed=5)
    sl = slice(23, 43)
    mo = type(full)(betas=full.betas, global_orient=full.global_orient[sl], hand_pose=full.hand_pose[sl],
                    trans=full.trans[sl], grasp=full.grasp[sl])
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        kp = model.keypoints(t(mo.betas), t(mo.global_orient), t(mo.hand_pose), t(mo.trans), backend=BACKEND).numpy()
    return mo, kp


def cfg(**kw):
    kw.setdefault("backend", BACKEND)
    return FitConfig(**kw)


def _mean_mm(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000)


# --- fitting -------------------------------------------------------------------------------------


def test_fit_recovers_noise_free_sequence(model, seq):
    mo, kp = seq
    res = fit_keypoints(model, kp, config=cfg())
    assert res.mean_error_mm < 1.5, res.summary()
    assert _mean_mm(res.keypoints_fit, kp) < 1.5
    assert res.hand_pose.shape == (20, 45) and res.global_orient.shape == (20, 3) and res.trans.shape == (20, 3)
    assert res.betas.shape == (10,)
    # trans is the wrist (smplx's transl convention would be centimetres off); the window ends in
    # the lift (peak wrist acceleration ~9 mm/frame^2), which the trans-acceleration prior biases
    # by ~2 mm (see the fixture)
    assert np.abs(res.trans - mo.trans).max(1).mean() < 2.5e-3
    assert not res.chirality_flips.any() and not res.discontinuities_left.any()


def test_fit_with_noise_beats_the_noise(model, seq):
    _, kp = seq
    rng = np.random.default_rng(0)
    noisy = kp + rng.normal(0, 0.003, kp.shape)  # 3 mm per axis (~4.8 mm mean 3D distance)
    res = fit_keypoints(model, torch.as_tensor(noisy), config=cfg())
    assert _mean_mm(res.keypoints_fit, kp) < 3.0, (_mean_mm(res.keypoints_fit, kp), _mean_mm(noisy, kp))


def test_fit_with_gaps_and_nan(model, seq):
    _, kp = seq
    kp = kp.copy()
    kp[3:5] = np.nan                   # short gap: interpolated
    kp[9:17, 8] = np.nan               # long gap of one fingertip: left to the smoothness terms
    valid = np.ones(20, dtype=bool)
    valid[0] = False                   # leading gap: stays invalid
    res = fit_keypoints(model, kp, valid=valid, config=cfg(stage2_iters=60, refine_iters=0))
    for name in ("betas", "global_orient", "hand_pose", "trans", "keypoints_fit"):
        assert np.isfinite(getattr(res, name)).all(), name
    assert np.isnan(res.per_joint_error_mm[3:5]).all() and np.isnan(res.per_joint_error_mm[0]).all()
    assert np.isnan(res.per_joint_error_mm[9:17, 8]).all()
    assert res.interpolated[3:5].all() and not res.interpolated[9:17, 8].any()
    assert np.isfinite(res.mean_error_mm) and res.mean_error_mm < 5.0


def test_result_save_load_roundtrip(model, seq, tmp_path):
    _, kp = seq
    res = fit_keypoints(model, kp[:5], config=cfg(stage1_iters=2, stage2_iters=3, refine_iters=0))
    path = res.save(tmp_path / "fit.npz")
    with np.load(path, allow_pickle=False) as z:   # no pickles inside
        assert "hand_pose" in z.files
    back = FitResult.load(path)
    np.testing.assert_array_equal(back.hand_pose, res.hand_pose)
    assert back.side == "right" and back.mean_error_mm == pytest.approx(res.mean_error_mm)
    assert '"stage2_iters": 3' in back.config


def test_fit_file_frames_and_render(model, seq, tmp_path):
    _, kp = seq
    np.save(tmp_path / "kp.npy", kp)
    res = fit_file(tmp_path / "kp.npy", tmp_path / "out.npz", model=model, frames=8, render_path=tmp_path / "r.png",
                   config=cfg(stage2_iters=20, refine_iters=0), verbose=False)
    assert res.num_frames == 8 and (tmp_path / "out.npz").is_file() and (tmp_path / "r.png").stat().st_size > 10_000
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        fit_file(tmp_path / "obj.npy", tmp_path / "x.npz", model=model)
    with pytest.raises(FileNotFoundError):
        fit_file(tmp_path / "missing.npy", tmp_path / "x.npz", model=model)


# --- input cleaning ------------------------------------------------------------------------------


def test_interpolate_gaps_is_exact_on_linear_data():
    T = 30
    t = np.arange(T, dtype=np.float64)
    kp = np.stack([np.stack([0.01 * t + k, -0.02 * t, 0.5 + 0 * t], 1) for k in range(21)], 1)  # (T, 21, 3)
    valid = np.ones((T, 21), dtype=bool)
    valid[5:8] = False           # 3-frame gap: filled exactly
    valid[12:22, 4] = False      # 10-frame gap of keypoint 4: stays invalid
    valid[:2, 7] = False         # leading and trailing gaps: stay invalid
    valid[-3:, 9] = False
    corrupted = np.where(valid[..., None], kp, 123.0)
    out, v = interpolate_gaps(corrupted, valid, max_gap=5)
    np.testing.assert_allclose(out[5:8], kp[5:8], atol=1e-12)
    assert v[5:8].all()
    assert not v[12:22, 4].any() and np.isnan(out[12:22, 4]).all()
    assert not v[:2, 7].any() and not v[-3:, 9].any()
    assert v.sum() == valid.sum() + 3 * 21
    # NaN input counts as invalid even when the mask says valid
    kp_nan = kp.copy()
    kp_nan[10, 3] = np.nan
    out, v = interpolate_gaps(kp_nan, np.ones(T, dtype=bool), max_gap=1)
    np.testing.assert_allclose(out[10, 3], kp[10, 3], atol=1e-12)
    with pytest.raises(ValueError, match="max_gap"):
        interpolate_gaps(kp, valid, max_gap=-1)


def _mirror_about_wrist_x(kp):
    out = kp.copy()
    out[..., 0] = 2 * kp[..., :1, 0] - kp[..., 0]
    return out


def test_chirality_flip_detection_and_handling(model, seq):
    mo, kp = seq
    assert (chirality_scores(kp, "right") > 0.05).all()
    assert (chirality_scores(kp, "left") < 0).all()
    flipped = kp.copy()
    bad = [12, 13, 17]
    flipped[bad] = _mirror_about_wrist_x(kp[bad])
    found = detect_chirality_flips(flipped, "right")
    assert found.nonzero()[0].tolist() == bad
    res = fit_keypoints(model, flipped, config=cfg(chirality="invalidate"))
    assert res.chirality_flips.nonzero()[0].tolist() == bad
    assert np.isnan(res.per_joint_error_mm[bad]).all()
    assert _mean_mm(res.keypoints_fit, kp) < 3.0        # neighbours carry the dropped frames
    res = fit_keypoints(model, flipped, config=cfg(chirality="repair", stage2_iters=40, refine_iters=0))
    assert res.chirality_flips[bad].all() and np.isfinite(res.per_joint_error_mm[bad]).all()


def test_detect_swaps_on_bimanual_stream(seq):
    _, kp = seq
    right = kp
    left = _mirror_about_wrist_x(kp) + np.array([-0.3, 0.0, 0.0])   # a left hand 30 cm to the side
    L, R = left.copy(), right.copy()
    swap = [6, 7, 8, 15]
    L[swap], R[swap] = right[swap], left[swap]
    L[11] = np.nan                                                   # a missing left hand
    swapped, L2, R2 = detect_swaps(L, R)
    assert swapped.nonzero()[0].tolist() == swap
    np.testing.assert_allclose(np.delete(L2, 11, 0), np.delete(left, 11, 0))
    np.testing.assert_allclose(R2, right)


def test_joint_limits_match_the_model_and_mirror(model):
    lim_r, lim_l = joint_limits("right"), joint_limits("left")
    assert lim_r.shape == (15, 3, 2) and (lim_r[..., 0] < lim_r[..., 1]).all() and (lim_l[..., 0] < lim_l[..., 1]).all()
    np.testing.assert_allclose(lim_l[:, 1:, 0], -lim_r[:, 1:, 1])
    # + flexion about z (inside the limits) curls the fingers towards the palm: higher chirality score
    hp = torch.zeros(2, 45, dtype=torch.float64)
    hp[1, [2, 11, 20, 29]] = 1.0
    with torch.no_grad():
        kp = model.keypoints(None, None, hp, None, backend=BACKEND).numpy()
    s = chirality_scores(kp, "right")
    assert s[1] > s[0] + 0.1


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(stage2_iters=-1), "stage2_iters"), (dict(stage1_iters=2.5), "stage1_iters"),
    (dict(optimizer="sgd"), "optimizer"), (dict(w_limits=-1.0), "w_limits"), (dict(w_keypoints=0.0), "w_keypoints"),
    (dict(chirality="flip"), "chirality"), (dict(lr=0.0), "lr"), (dict(dtype="float16"), "dtype"),
    (dict(backend="gpu"), "backend"), (dict(jump_pose=0), "jump_pose"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        FitConfig(**kw)


def test_config_collects_all_problems():
    with pytest.raises(ValueError) as e:
        FitConfig(stage2_iters=-1, optimizer="sgd")
    assert "stage2_iters" in str(e.value) and "optimizer" in str(e.value)


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match=r"\(T, 21, 3\)"):
        fit_keypoints(model, np.zeros((5, 20, 3)))
    with pytest.raises(ValueError, match=r"\(T, 21, 3\)"):
        fit_keypoints(model, np.zeros((21, 3)))
    with pytest.raises(ValueError, match="valid"):
        fit_keypoints(model, np.zeros((5, 21, 3)), valid=np.ones(4, dtype=bool))
    with pytest.raises(TypeError, match="bool"):
        fit_keypoints(model, np.zeros((5, 21, 3)), valid=np.ones(5))
    with pytest.raises(ValueError, match="no valid keypoint"):
        fit_keypoints(model, np.full((5, 21, 3), np.nan))
    with pytest.raises(TypeError, match="FitConfig"):
        fit_keypoints(model, np.zeros((5, 21, 3)), config={"stage2_iters": 3})


# --- real data and the demo ----------------------------------------------------------------------


def test_fit_real_mediapipe_keypoints(model):
    """60 frames (every 2nd of the first 120 = 15 FPS) of a real MediaPipe right hand.

    The bound: the full 621-frame fit reaches ~4.7 mm mean; this short, quick fit measured ~5 mm.
    MediaPipe's wrist, thumb CMC/MCP and finger MCPs are not MANO's joint centres, so a floor of
    several mm remains whatever the optimiser does."""
    if not DATA.is_file():
        pytest.skip(f"real keypoints not found at {DATA} (a user's checkout has no ../shared/data)")
    kp = np.load(DATA, allow_pickle=False)[:120:2]
    res = fit_keypoints(model, kp, config=cfg(stage2_iters=80, refine_iters=20))
    assert res.mean_error_mm < 7.0, res.summary()
    assert np.isfinite(res.hand_pose).all()


def test_pose_discontinuity_is_reported(model, seq):
    """A single frame whose data is the hand turned by 2 rad about the wrist: the fit follows the
    data there, the jump against both neighbours is flagged, re-initialised, and still reported."""
    from beingh0.core.rotations import rodrigues

    _, kp = seq
    bad = kp.copy()
    w = kp[10, 0]
    bad[10] = (kp[10] - w) @ rodrigues(torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)).numpy().T + w
    res = fit_keypoints(model, bad, config=cfg(stage2_iters=100, refine_iters=20))
    assert res.discontinuities.nonzero()[0].tolist() == [10]
    assert res.discontinuities_left[10]
    assert (res.loss_history[:, 0] == 3).any()          # the refinement ran


def test_fit_left_hand(seq):
    """Left hands: the mirrored motion on the left model, mirrored limits and chirality."""
    from beingh0.mano.model import mirror_points, mirror_pose

    mo, _ = seq
    left = ManoModel.embedded("left")
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        kp = left.keypoints(t(mo.betas), mirror_pose(t(mo.global_orient)), mirror_pose(t(mo.hand_pose)),
                            mirror_points(t(mo.trans)), backend=BACKEND).numpy()
    assert not detect_chirality_flips(kp, "left").any() and detect_chirality_flips(kp, "right").all()
    res = fit_keypoints(left, kp, config=cfg())
    assert res.mean_error_mm < 1.5 and not res.chirality_flips.any()
