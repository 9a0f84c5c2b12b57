"""Clips -> features -> windows: feature-space canonicalisation equals the motion module's, clip
validation, synthetic variety."""
import numpy as np
import pytest
import torch

from beingh0.motion import canonicalize, decode_features, encode_features
from beingh0.tokenizer import MotionClip, WindowSampler, canonicalize_features, clip_windows, prepare_clip
from beingh0.tokenizer.data import hand_model
from beingh0.tokenizer.synthetic import random_clip, random_clips


@pytest.mark.parametrize("spec", ["D162", "D114", "D51"])
def test_canonicalize_features_matches_motion_canonicalize(spec):
    clip = random_clip(np.random.default_rng(5), seconds=3.0)
    prep = prepare_clip(clip, spec)
    ref = 17
    got = canonicalize_features(prep.features, prep.rot[ref], prep.trans[ref], spec)
    p = dict(prep.params)
    betas = p.pop("betas")
    canon, _ = canonicalize(p, ref)
    canon["betas"] = betas
    want = encode_features(canon, spec, model=hand_model("right"))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    # and back: the decoded parameters are the canonical ones
    dec = decode_features(got, spec)
    torch.testing.assert_close(dec["trans"], canon["trans"], rtol=0, atol=1e-12)


def test_prepare_resamples_and_mirrors_left_hands():
    rng = np.random.default_rng(0)
    right = random_clip(rng, seconds=2.0, fps=30.0)
    assert right.num_frames == 60
    prep = prepare_clip(right)
    assert prep.num_frames == 30                       # 15 FPS: floor(59 / 2) + 1
    left = MotionClip(right.global_orient * torch.tensor([1.0, -1, -1]), right.hand_pose * torch.tensor([1.0, -1, -1]).repeat(15),
                      right.betas, right.trans * torch.tensor([-1.0, 1, 1]), fps=30.0, side="left")
    torch.testing.assert_close(prepare_clip(left).features, prep.features, rtol=0, atol=1e-9)


def test_sampler_windows_are_canonical_and_padded():
    clips = [prepare_clip(c) for c in random_clips(3, seed=4, seconds=(2.0, 4.0))]
    s = WindowSampler(clips, seed=1)
    w, m = s.sample(16)
    assert w.shape == (16, 16, 162) and m.shape == (16, 16)
    assert bool((m[:, 15:] == 0).all()) and bool((w[:, 15] == 0).all())
    state = s.state()
    a, _ = s.sample(4)
    s.set_state(state)
    b, _ = s.sample(4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    wv, mv, feats = clip_windows(clips[0])
    assert int(mv.sum()) == clips[0].num_frames
    torch.testing.assert_close(feats[0, 96:99], torch.zeros(3, dtype=torch.float64))   # trans of frame 0 is the origin


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


def test_synthetic_clips_vary():
    clips = random_clips(6, seed=0)
    lengths = {c.num_frames for c in clips}
    assert len(lengths) > 3
    closure = torch.stack([c.hand_pose[:, 2::3].mean() for c in clips])
    assert float(closure.std()) > 0.05                         # different grasps
    speed = torch.stack([(c.trans[1:] - c.trans[:-1]).norm(dim=1).mean() for c in clips])
    assert float(speed.max() / speed.min()) > 1.2               # different wrist speeds
