"""AlignTransform end to end: dots rendered at projected keypoints end up under the post-transform projections."""
import math

import numpy as np
import pytest
import torch

from beingh0.align import OFFICIAL_TARGET, AlignTransform, BalanceConfig, BalanceParams, Intrinsics, TargetCamera, project_points
from beingh0.mano.model import ManoModel

SIGMA = 3.0  # source-pixel std of each rendered dot


def _render_dots(uv: np.ndarray, H: int, W: int) -> np.ndarray:
    """A dark (H, W, 3) uint8 image with a bright Gaussian dot at each pixel position in ``uv`` (N, 2)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((H, W))
    for u, v in uv:
        img += np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * SIGMA ** 2))
    return np.repeat((np.clip(img, 0, 1) * 250).round().astype(np.uint8)[..., None], 3, -1)


def _apart(uv: np.ndarray, d: float) -> list[int]:
    """Greedy: keypoint 0, then each keypoint at least ``d`` pixels from those already taken."""
    ids = [0]
    for k in range(1, len(uv)):
        if all(np.linalg.norm(uv[k] - uv[j]) >= d for j in ids):
            ids.append(k)
    return ids


def _centroid(gray: np.ndarray, guess: np.ndarray, r: int = 7) -> np.ndarray:
    x0, y0 = np.round(guess).astype(int)
    win = gray[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    win = np.clip(win - 0.1 * win.max(), 0, None)               # drop the faint skirt
    ys, xs = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return np.array([(win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()])


@pytest.fixture(scope="module")
def hand():
    """One right hand in the camera frame: MANO params (T=1) and its 21 keypoints."""
    model = ManoModel.embedded()
    g = torch.Generator().manual_seed(4)
    go = torch.tensor([[0.2, -0.3, 0.1]], dtype=torch.float64)
    hp = 0.2 * torch.randn(1, 45, generator=g, dtype=torch.float64)
    trans = torch.tensor([[0.06, 0.03, 0.5]], dtype=torch.float64)
    kp = model.keypoints(global_orient=go, hand_pose=hp, trans=trans)
    return model, {"global_orient": go, "hand_pose": hp, "betas": torch.zeros(10, dtype=torch.float64), "trans": trans}, kp.numpy()


@pytest.mark.parametrize("params, dist", [
    (None, None),                                               # alignment alone
    (BalanceParams(1.0, 0.5), (-0.15, 0.04, 5e-4, -3e-4)),      # rotation, distorted source
    (BalanceParams(1.2, -0.3), None),                           # depth scaling and rotation
])
def test_dots_follow_the_projections(hand, params, dist):
    model, mano, kp = hand
    # a source camera whose pixel scale is close to the model input's, so dots stay a few pixels wide
    H, W = 400, 560
    src = Intrinsics(310.0, 300.0, 275.0, 205.0, W, H, dist)
    ids = _apart(project_points(kp[0], src), 7 * SIGMA)      # the wrist and keypoints whose dots do not overlap
    assert len(ids) >= 4
    frames = _render_dots(project_points(kp[0, ids], src), H, W)
    t = AlignTransform(balance=None, backend="reference", mean=None, std=None)
    sample = {"frames": frames, "intrinsics": np.array([src.fx, src.fy, src.cx, src.cy]),
              "distortion": None if dist is None else np.array(dist), "mano": {"right": mano},
              "keypoints_3d": {"right": kp}, "source": "synthetic"}
    out = t(sample, params=params)
    assert out["image"].shape == (3, 448, 448) and out["mask"].shape == (448, 448) and "frames" not in out
    assert isinstance(out["intrinsics"], Intrinsics) and out["intrinsics"].width == 448
    m2 = out["mano"]["right"]
    kp2 = model.keypoints(global_orient=m2["global_orient"], hand_pose=m2["hand_pose"], trans=m2["trans"]).numpy()
    np.testing.assert_allclose(kp2, out["keypoints_3d"]["right"], atol=1e-9)
    expected = project_points(kp2[0, ids], out["intrinsics"])
    gray = out["image"][0].numpy()
    for i, e in enumerate(expected):
        # the wrist is exact under every move, so is everything under rotation; depth scaling leaves the
        # rigid-hand parallax residual for the tips (beingh0/align/balance.py), so they get its size as slack
        slack = 0.0 if (params is None or params.scale == 1.0 or i == 0) else _parallax(kp[0, ids[i]], kp[0, 0], params, out)
        assert np.linalg.norm(_centroid(gray, e) - e) < 0.5 + slack, (i, _centroid(gray, e), e)


def _parallax(p, wrist, params, out):
    """|u' - c| |s - 1| |dz| / (s (z + dz)) in model pixels, for one keypoint."""
    K = out["intrinsics"]
    moved = np.array(p, dtype=np.float64)
    uv = project_points(moved, K)
    dz = p[2] - wrist[2]
    return float(np.linalg.norm(uv - [K.cx, K.cy]) * abs(params.scale - 1) * abs(dz) / (params.scale * (wrist[2] + dz))) * 1.5


def test_transform_video_two_hands_balanced(hand):
    model, mano, kp = hand
    T, H, W = 3, 120, 160
    frames = np.random.default_rng(0).integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    right = {k: (v.expand(T, -1).clone() if v.dim() == 2 else v) for k, v in mano.items()}
    left = {k: (v.numpy().copy() if k == "betas" else np.repeat(v.numpy(), T, 0)) for k, v in mano.items()}
    left["trans"] = left["trans"] * [-1, 1, 1]
    kp2d = np.tile(project_points(kp[0], Intrinsics(100, 100, 80, 60, W, H))[None], (T, 1, 1))
    t = AlignTransform(balance=BalanceConfig(margin_px=2.0), backend="reference", seed=0)
    sample = {"frames": frames, "intrinsics": Intrinsics(100, 100, 80, 60, W, H), "mano": {"right": right, "left": left},
              "keypoints_2d": {"right": kp2d}, "text": "pick up the cup"}
    out = t(sample)
    assert out["image"].shape == (T, 3, 448, 448) and out["image"].dtype == torch.float32
    assert out["mask"].shape == (T, 448, 448) and out["text"] == "pick up the cup"
    a = out["align"]
    assert not a["fallback"] and (a["scale"] != 1.0 or a["angle"] != 0.0)
    # types kept, trans moved as documented, hand_pose untouched
    assert isinstance(out["mano"]["right"]["trans"], torch.Tensor) and isinstance(out["mano"]["left"]["trans"], np.ndarray)
    c, s = math.cos(a["angle"]), math.sin(a["angle"])
    t0 = left["trans"][0]
    np.testing.assert_allclose(out["mano"]["left"]["trans"][0], [c * t0[0] - s * t0[1], s * t0[0] + c * t0[1], a["scale"] * t0[2]])
    assert out["mano"]["left"]["hand_pose"] is left["hand_pose"]
    np.testing.assert_allclose(out["keypoints_2d"]["right"][0], (np.c_[kp2d[0], np.ones(21)] @ a["dst_from_src"].T)[:, :2])


def test_transform_errors():
    t = AlignTransform(backend="reference")
    img = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(KeyError, match="intrinsics"):
        t({"frames": img})
    with pytest.raises(ValueError, match="fx must be > 0"):
        t({"frames": img, "intrinsics": [0.0, 50.0, 32.0, 24.0]})
    with pytest.raises(ValueError, match="finite"):
        t({"frames": img, "intrinsics": [50.0, math.nan, 32.0, 24.0]})
    with pytest.raises(ValueError, match="rescale the intrinsics"):
        t({"frames": img, "intrinsics": Intrinsics(50, 50, 32, 24, 640, 480)})
    with pytest.raises(TypeError, match="uint8"):
        t({"frames": img.astype(np.float32), "intrinsics": [50.0, 50.0, 32.0, 24.0]})
    with pytest.raises(ValueError, match="NaN"):
        t({"frames": img, "intrinsics": [50.0, 50.0, 32.0, 24.0], "mano": {"right": {"trans": np.full((1, 3), np.nan)}}})
    with pytest.raises(TypeError, match="BalanceConfig"):
        AlignTransform(balance={"scale_range": (0.9, 1.1)})
    with pytest.raises(TypeError, match="TargetCamera"):
        AlignTransform(target=OFFICIAL_TARGET.frame)
    assert TargetCamera(size=224).size == (224, 224)


def test_default_backend_matches_reference():
    frames = np.random.default_rng(1).integers(0, 255, (2, 90, 120, 3), dtype=np.uint8)
    sample = {"frames": frames, "intrinsics": [100.0, 98.0, 60.0, 44.0], "distortion": [-0.1, 0.01, 0.0, 0.0]}
    ref = AlignTransform(backend="reference")(sample, params=BalanceParams(1.1, 0.2))
    out = AlignTransform()(sample, params=BalanceParams(1.1, 0.2))                    # auto: C++ on CPU when built
    assert torch.equal(out["mask"], ref["mask"])
    assert (out["image"] - ref["image"]).abs().max() < 1e-3
