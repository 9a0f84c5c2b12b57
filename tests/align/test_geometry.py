"""Cameras, distortion and the one-affine alignment: projections after alignment land on the warped content."""
import math

import numpy as np
import pytest
import torch

from beingh0.align import (OFFICIAL_TARGET, Intrinsics, TargetCamera, align_matrix, apply_affine, model_from_frame_matrix,
                           project_points, resize_matrix, rotation_z)
from beingh0.align.camera import distort_normalized, undistort_normalized, undistort_pixels
from beingh0.mano.model import ManoModel
from beingh0.testing import random_pose


def random_hands(n: int, seed: int, depth=(0.35, 0.9)) -> tuple[np.ndarray, np.ndarray]:
    """(n, 21, 3) keypoints of random posed embedded hands and their (n, 3) trans (camera frame, metres)."""
    g = torch.Generator().manual_seed(seed)
    pose = random_pose(n, seed, mix=False)
    z = torch.empty(n, dtype=torch.float64).uniform_(*depth, generator=g)
    xy = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * z[:, None] * torch.tensor([0.8, 0.5], dtype=torch.float64)
    trans = torch.cat([xy, z[:, None]], 1)
    kp = ManoModel.embedded().keypoints(global_orient=pose[:, :3], hand_pose=pose[:, 3:], trans=trans)
    return kp.numpy(), trans.numpy()


def random_camera(rng, distorted: bool) -> Intrinsics:
    W, H = int(rng.integers(320, 2000)), int(rng.integers(240, 1500))
    f = rng.uniform(0.5, 1.5) * W
    dist, model = None, "radtan"
    if distorted:
        if rng.random() < 0.5:
            dist = (rng.uniform(-0.2, 0.1), rng.uniform(-0.05, 0.05), rng.uniform(-1e-3, 1e-3), rng.uniform(-1e-3, 1e-3), 0.01)
        else:
            dist, model = tuple(rng.uniform(-0.05, 0.05, 4)), "fisheye"
    return Intrinsics(f, f * rng.uniform(0.97, 1.03), W / 2 + rng.uniform(-20, 20), H / 2 + rng.uniform(-20, 20), W, H, dist, model)


def test_official_target():
    hfov, vfov = OFFICIAL_TARGET.frame.fov_deg()
    assert abs(hfov - 105.0) < 0.01 and abs(vfov - 72.49) < 0.01
    assert OFFICIAL_TARGET.size == (448, 448) and OFFICIAL_TARGET.resize == "stretch"


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "crop"])
def test_model_from_frame_matrix(mode):
    M = model_from_frame_matrix(TargetCamera(OFFICIAL_TARGET.frame, (448, 448), mode))
    # the frame's outer pixel edges map to the output's edges (stretch) or centred inside/outside it
    tl, br = apply_affine(M, np.array([[-0.5, -0.5], [1919.5, 1079.5]]))
    centre = apply_affine(M, np.array([959.5, 539.5]))
    np.testing.assert_allclose(centre, [223.5, 223.5], atol=1e-12)
    if mode == "stretch":
        np.testing.assert_allclose([tl, br], [[-0.5, -0.5], [447.5, 447.5]], atol=1e-12)
        np.testing.assert_array_equal(M, resize_matrix((1920, 1080), (448, 448)).numpy())
    else:
        assert M[0, 0] == M[1, 1]
        width, height = br - tl
        assert (width, height) == pytest.approx((448, 252) if mode == "letterbox" else (796.44, 448), abs=0.01)


def test_one_resize_matrix():
    """beingh0.align re-exports THE resize affine of beingh0.ops.warp (sizes as (width, height)); a
    non-square case pins the axis order: x scales by the widths, y by the heights."""
    import beingh0.ops.warp as warp

    assert resize_matrix is warp.resize_matrix
    M = resize_matrix((640, 480), (320, 60)).numpy()
    np.testing.assert_allclose(apply_affine(M, [[-0.5, -0.5], [639.5, 479.5]]), [[-0.5, -0.5], [319.5, 59.5]],
                               atol=1e-12)
    M = model_from_frame_matrix(TargetCamera(Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480), (60, 320), "letterbox"))
    np.testing.assert_allclose(apply_affine(M, [[-0.5, -0.5], [639.5, 479.5]]), [[119.5, -0.5], [199.5, 59.5]],
                               atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 0.3, -2.0, math.pi, 7.5])
def test_rotation_z_is_the_core_rotation(angle):
    from beingh0.core.rotations import axis_angle_to_matrix

    ref = axis_angle_to_matrix(torch.tensor([0.0, 0.0, angle], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(rotation_z(angle), ref, atol=1e-15)


@pytest.mark.parametrize("distorted", [False, True])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "crop"])
def test_alignment_is_consistent(distorted, resize):
    """Random hands, random cameras: projecting with K_model == mapping the source projections."""
    rng = np.random.default_rng(1 + distorted)
    kp, _ = random_hands(24, seed=3)
    for _ in range(6):
        src = random_camera(rng, distorted)
        al = align_matrix(src, OFFICIAL_TARGET, resize=resize, size=(int(rng.integers(200, 500)), 448))
        before = project_points(kp, src)                          # pixels of the real (distorted) source
        after = project_points(kp, al.K_model)                    # model input, from the unchanged 3D
        err = np.linalg.norm(al.src_to_model(before) - after, axis=-1)
        assert err.max() < 1e-6, err.max()
    assert al.K_model.dist is None and (al.K_model.height, al.K_model.width) == al.out_hw


def test_align_matrix_formula():
    src = Intrinsics(1400.0, 1380.0, 950.0, 530.0, 1920, 1080)
    F = align_matrix(src).frame_from_src
    s = np.array([736.6339 / 1400, 736.6339 / 1380])
    np.testing.assert_allclose(np.diag(F)[:2], s)
    np.testing.assert_allclose(F[:2, 2], [960 - s[0] * 950, 540 - s[1] * 530])
    # same camera in and out: the identity up to the resize
    al = align_matrix(OFFICIAL_TARGET.frame)
    np.testing.assert_allclose(al.frame_from_src, np.eye(3), atol=1e-12)


def test_distortion_matches_opencv_and_inverts():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.4, 0.4, (200, 3)) + [0, 0, 1.0]
    K = np.array([[600.0, 0, 320], [0, 610.0, 240], [0, 0, 1]])
    for model, d in (("radtan", (-0.25, 0.08, 1e-3, -5e-4, -0.01)), ("radtan", (0.1, -0.02, 0.0, 2e-3)),
                     ("fisheye", (0.02, -0.01, 0.004, -0.001))):
        cam = Intrinsics.from_matrix(K, 640, 480, d, model)
        ours = project_points(pts, cam)
        if model == "radtan":
            ref = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, np.array(d))[0][:, 0]
        else:
            ref = cv2.fisheye.projectPoints(pts[:, None], np.zeros(3), np.zeros(3), K, np.array(d))[0][:, 0]
        np.testing.assert_allclose(ours, ref, atol=1e-6)
        n = pts[:, :2] / pts[:, 2:]
        np.testing.assert_allclose(undistort_normalized(distort_normalized(n, d, model), d, model), n, atol=1e-10)
        np.testing.assert_allclose(undistort_pixels(ours, cam), project_points(pts, cam.K), atol=1e-7)


@pytest.mark.parametrize("bad, msg", [
    (dict(fx=0.0), "fx must be > 0"), (dict(fy=-500.0), "fy must be > 0"), (dict(fx=math.nan), "fx must be finite"),
    (dict(cx=math.inf), "cx must be finite"), (dict(width=0), "width must be a positive integer"),
    (dict(height=-3), "height must be a positive integer"), (dict(dist=(0.1, 0.2)), "needs 4 or 5 coefficients"),
    (dict(dist=(0.1, math.nan, 0, 0)), "must be finite"), (dict(dist_model="pinhole"), "dist_model must be one of"),
])
def test_bad_intrinsics_raise_clear_errors(bad, msg):
    args = dict(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    args.update(bad)
    with pytest.raises(ValueError, match=msg):
        Intrinsics(**args)


def test_bad_inputs_elsewhere():
    with pytest.raises(TypeError, match="must be a number"):
        Intrinsics("a", 1.0, 0, 0, 10, 10)
    with pytest.raises(ValueError, match="needs 4 comma-separated"):
        Intrinsics.from_string("500,500,320", 640, 480)
    with pytest.raises(ValueError, match="comma-separated numbers"):
        Intrinsics.from_string("500,abc,320,240", 640, 480)
    with pytest.raises(ValueError, match="no skew"):
        Intrinsics.from_matrix([[500, 3, 320], [0, 500, 240], [0, 0, 1]], 640, 480)
    with pytest.raises(ValueError, match="NaN"):
        Intrinsics.from_matrix([[500, 0, 320], [0, math.nan, 240], [0, 0, 1]], 640, 480)
    with pytest.raises(ValueError, match="size must be"):
        TargetCamera(size=(0, 448))
    with pytest.raises(ValueError, match="resize must be"):
        TargetCamera(resize="squash")
    with pytest.raises(TypeError, match="Intrinsics"):
        align_matrix(np.eye(3))
    with pytest.raises(ValueError, match="balance must be"):
        align_matrix(OFFICIAL_TARGET.frame, balance=np.ones((3, 3)))
