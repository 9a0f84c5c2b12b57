"""Tests of beingh0.motion.features (sizes, encode/decode, part split, normalisation)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from beingh0.mano import ManoModel
from beingh0.core import rotations as rot
from beingh0.motion.features import (
    FEATURE_NAMES,
    FeatureSpec,
    NormStats,
    decode_features,
    encode_features,
    merge_parts,
    split_parts,
)
from beingh0.testing import assert_verbose_allclose

F64 = torch.float64
SIZES = {"D51": (51, 6, 45), "D99": (99, 9, 90), "D109": (109, 9, 100), "D114": (114, 6, 105),
         "D162": (162, 9, 150)}


@pytest.fixture(scope="module")
def model():
    return ManoModel.embedded("right")


def _params(T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    aa = lambda *s: torch.nn.functional.normalize(torch.randn(*s, 3, dtype=F64, generator=g), dim=-1) * (  # noqa: E731
        torch.rand(*s, 1, dtype=F64, generator=g) * 3.0)
    return {"global_orient": aa(T), "hand_pose": aa(T, 15).reshape(T, 45),
            "trans": torch.randn(T, 3, dtype=F64, generator=g) * 0.3,
            "betas": torch.randn(10, dtype=F64, generator=g)}


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_sizes(name):
    spec = FeatureSpec(name)
    dim, wrist, finger = SIZES[name]
    assert (spec.dim, spec.wrist_dim, spec.finger_dim) == (dim, wrist, finger)
    s = list(spec.slices.items())
    assert [k for k, _ in s][:3] == ["hand_pose", "global_orient", "trans"]
    assert s[0][1].start == 0 and s[-1][1].stop == dim
    assert all(a.stop == b.start for (_, a), (_, b) in zip(s, s[1:]))
    assert FeatureSpec.from_dim(dim) == spec


def test_default_and_bad_names():
    assert FeatureSpec().name == "D162"
    with pytest.raises(ValueError, match="D51"):
        FeatureSpec("D100")
    with pytest.raises(ValueError, match="known sizes"):
        FeatureSpec.from_dim(100)


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_encode_decode_round_trip(name, model):
    spec = FeatureSpec(name)
    p = _params()
    x = encode_features(p, spec, model=model)
    assert x.shape == (7, spec.dim) and x.dtype == F64
    out = decode_features(x, spec)
    # Compare rotations as matrices (aa decodes with angle in [0, pi]; ours are < 3 rad anyway).
    for key in ("global_orient", "hand_pose"):
        assert_verbose_allclose(out[key], p[key], atol=1e-9, name=key)
    assert_verbose_allclose(out["trans"], p["trans"], atol=1e-15, name="trans")
    if spec.has_betas:
        assert_verbose_allclose(out["betas"], p["betas"].expand(7, 10), atol=0, name="betas")
    else:
        assert "betas" not in out
    if spec.has_joints:
        J = model.keypoints(p["betas"], p["global_orient"], p["hand_pose"], p["trans"])
        assert_verbose_allclose(out["joints"], J - J[:, :1], atol=1e-12, name="joints")
        assert torch.equal(out["joints"][:, 0], torch.zeros(7, 3, dtype=F64))


def test_block_contents_d162(model):
    p = _params(T=3)
    x = encode_features(p, "D162", model=model)
    s = FeatureSpec("D162").slices
    R = rot.axis_angle_to_matrix(p["global_orient"])
    assert_verbose_allclose(x[:, s["global_orient"]], torch.cat([R[:, :, 0], R[:, :, 1]], -1), atol=0, name="R6d")
    Rh = rot.axis_angle_to_matrix(p["hand_pose"].reshape(3, 15, 3))
    assert_verbose_allclose(x[:, s["hand_pose"]].reshape(3, 15, 6)[:, 4], rot.matrix_to_6d(Rh[:, 4]), atol=0,
                            name="joint 4")
    assert torch.equal(x[:, s["trans"]], p["trans"])
    # Joints are wrist-relative, so they do not depend on trans.
    p2 = dict(p, trans=p["trans"] + 5.0)
    assert_verbose_allclose(encode_features(p2, "D162", model=model)[:, s["joints"]], x[:, s["joints"]], atol=1e-12,
                            name="J")


def test_encode_needs_model_and_betas():
    p = _params()
    with pytest.raises(ValueError, match="model="):
        encode_features(p, "D162")
    with pytest.raises(ValueError, match="betas"):
        encode_features({k: v for k, v in p.items() if k != "betas"}, "D109")
    with pytest.raises(ValueError, match=r"\(T, 45\)"):
        encode_features(dict(p, hand_pose=p["hand_pose"][:, :44]), "D51")
    with pytest.raises(ValueError, match="hand_pose"):
        encode_features({k: v for k, v in p.items() if k != "hand_pose"}, "D51")


def test_decode_batched_and_bad_dim():
    x = encode_features(_params(T=12), "D99").reshape(3, 4, 99)
    out = decode_features(x, "D99")
    assert out["hand_pose"].shape == (3, 4, 45) and out["global_orient"].shape == (3, 4, 3)
    with pytest.raises(ValueError, match="last dimension 162.*D99"):
        decode_features(x, "D162")
    with pytest.raises(ValueError, match="last dimension 51"):
        decode_features(torch.zeros(4, 50, dtype=F64), "D51")


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_split_merge_round_trip(name, model):
    spec = FeatureSpec(name)
    x = encode_features(_params(T=10), spec, model=model).reshape(2, 5, spec.dim)
    wrist, finger = split_parts(x, spec)
    assert wrist.shape == (2, 5, SIZES[name][1]) and finger.shape == (2, 5, SIZES[name][2])
    s = spec.slices
    assert torch.equal(wrist, torch.cat([x[..., s["global_orient"]], x[..., s["trans"]]], -1))
    assert torch.equal(finger[..., : s["hand_pose"].stop], x[..., s["hand_pose"]])
    assert torch.equal(merge_parts(wrist, finger, spec), x)


def test_merge_rejects_wrong_parts():
    with pytest.raises(ValueError, match="wrist part"):
        merge_parts(torch.zeros(4, 6), torch.zeros(4, 150), "D162")
    with pytest.raises(ValueError, match="leading shape"):
        merge_parts(torch.zeros(4, 9), torch.zeros(3, 150), "D162")


def test_normstats_round_trip_and_constant_dims():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 8, dtype=F64, generator=g) * torch.arange(1, 9, dtype=F64) + 3.0
    x[:, 2] = 0.7                                         # zero variance
    stats = NormStats.fit(x)
    n = stats.apply(x)
    assert torch.isfinite(n).all()
    assert torch.equal(n[:, 2], torch.zeros(100, dtype=F64))
    assert stats.std[2].item() == stats.floor
    keep = [i for i in range(8) if i != 2]
    assert_verbose_allclose(n[:, keep].mean(0), torch.zeros(7, dtype=F64), atol=1e-12, name="mean")
    assert_verbose_allclose(n[:, keep].std(0, unbiased=False), torch.ones(7, dtype=F64), atol=1e-12, name="std")
    assert_verbose_allclose(stats.invert(n), x, atol=1e-12, name="invert")
    back = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert torch.equal(back.mean, stats.mean) and torch.equal(back.std, stats.std) and back.floor == stats.floor
    # float32 inputs keep their dtype
    assert stats.apply(x.float()).dtype == torch.float32


def test_normstats_mask_and_errors():
    x = torch.zeros(2, 16, 3, dtype=F64)
    x[:, :15] = torch.randn(2, 15, 3, dtype=F64)
    x[:, 15] = 100.0                                      # padding that must be ignored
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :15] = True
    stats = NormStats.fit(x, mask=mask)
    assert_verbose_allclose(stats.mean, x[:, :15].reshape(-1, 3).mean(0), atol=1e-14, name="masked mean")
    with pytest.raises(ValueError, match="last dimension 3"):
        stats.apply(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="unknown keys"):
        NormStats.from_dict(dict(stats.to_dict(), extra=1))
    with pytest.raises(ValueError, match="floor"):
        NormStats(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="no frames"):
        NormStats.fit(x, mask=torch.zeros(2, 16, dtype=torch.bool))
    assert math.isclose(NormStats.fit(x, floor=0.5).floor, 0.5)
