"""The tokenizer's motion: in-memory clips take the loader's feature path (left hands mirrored),
dataset folders are read through the loader, several folders as one."""
import numpy as np
import pytest
import torch

from beingh0.core.errors import UserFileError
from beingh0.mano import mirror_points, mirror_pose
from beingh0.motion import decanonicalize, decode_features, from_right_hand
from beingh0.tokenizer import MotionClip, ShardDatasets, clip_features, clip_windows, open_datasets


def _clip(T=40, fps=30.0, side="right", seed=0):
    g = np.random.default_rng(seed)
    return MotionClip(g.normal(0, 1, (T, 3)), g.normal(0, 0.4, (T, 45)), g.normal(0, 0.5, 10),
                      g.normal(0.5, 0.2, (T, 3)), fps=fps, side=side)


def _mirrored(c, side):
    return MotionClip(mirror_pose(c.global_orient), mirror_pose(c.hand_pose), c.betas, mirror_points(c.trans),
                      fps=c.fps, side=side)


def test_left_clip_and_its_mirrored_right_clip_agree():
    left = _clip(side="left", seed=1)
    right = _mirrored(left, "right")
    xl, ml, bl = clip_windows(left)
    xr, mr, br = clip_windows(right)
    assert xl.dtype == torch.float64 and xl.shape == (2, 16, 162)      # 40 frames at 30 fps -> 20 at 15 -> 2 windows
    assert ml.sum() == 20 and not ml[:, 15].any()
    torch.testing.assert_close(xl, xr, rtol=0, atol=1e-10)
    torch.testing.assert_close(bl, br, rtol=0, atol=0)
    fl, _ = clip_features(left)
    fr, _ = clip_features(right)
    torch.testing.assert_close(fl, fr, rtol=0, atol=1e-10)


def test_clip_features_frame_puts_motion_back():
    for side in ("right", "left"):
        c = _clip(T=30, fps=15.0, side=side, seed=2)
        f, frame = clip_features(c)
        torch.testing.assert_close(f[0, 96:99], torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
        p = decode_features(f)
        p = from_right_hand(decanonicalize({k: p[k] for k in ("global_orient", "hand_pose", "trans")}, frame), side)
        torch.testing.assert_close(p["trans"], c.trans, rtol=0, atol=1e-10)


def test_motion_clip_validation():
    T = 10
    ok = dict(global_orient=np.zeros((T, 3)), hand_pose=np.zeros((T, 45)), betas=np.zeros(10), trans=np.zeros((T, 3)))
    MotionClip(**ok)
    with pytest.raises(ValueError, match=r"hand_pose must be \(T, 45\)"):
        MotionClip(**{**ok, "hand_pose": np.zeros((T, 48))})
    bad = np.zeros((T, 3))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MotionClip(**{**ok, "trans": bad})
    with pytest.raises(ValueError, match="side"):
        MotionClip(**ok, side="middle")
    with pytest.raises(ValueError, match="betas"):
        MotionClip(**{**ok, "betas": np.zeros((T + 1, 10))})
    with pytest.raises(ValueError, match="fps"):
        MotionClip(**ok, fps=0)


def test_several_folders_read_as_one(synth_sets):
    train, val = synth_sets
    a, b = open_datasets(train, seed=3), open_datasets(val, seed=3)
    both = open_datasets([train, val], seed=3)
    assert isinstance(both, ShardDatasets) and len(both) == len(a) + len(b)
    starts = both.episode_starts()
    assert starts[0] == 0 and starts[-1] == len(both) and (np.diff(starts) > 0).all()
    N = len(both)
    ids = [0, len(a) - 1, len(a), N - 1, N + 2, 2 * N + len(a) + 1]     # epochs 0, 1, 2
    got = both.__getitems__(ids)
    want = [a[0], a[len(a) - 1], b[0], b[len(b) - 1], a.__getitems__([len(a) + 2])[0],
            b.__getitems__([2 * len(b) + 1])[0]]
    for g, w in zip(got, want):
        assert (g["episode"], g["hand"], g["window_start"], g["ref_index"]) == \
            (w["episode"], w["hand"], w["window_start"], w["ref_index"])
        torch.testing.assert_close(g["features"], w["features"], rtol=0, atol=0)
    assert both.fingerprint() != a.fingerprint()
    hands = {s["hand"] for s in a.__getitems__(list(range(len(a))))}
    assert hands == {"left", "right"}                              # both hands train one tokenizer


def test_open_datasets_errors(tmp_path):
    with pytest.raises(UserFileError, match="not a dataset folder"):
        open_datasets(tmp_path)
    with pytest.raises(ValueError, match="no dataset folders"):
        open_datasets([])
