"""warp_align: the reference against OpenCV, every backend against the float64 reference, bad input."""
import math

import numpy as np
import pytest
import torch

from beingh0.ops import Backend
from beingh0.ops.warp import (IMAGENET_MEAN, IMAGENET_STD, WarpOptions, prepare, resize_matrix, source_coordinates,
                               warp_align)
from beingh0.testing import assert_verbose_allclose, backend_device, skip_unless_available

try:  # only the comparisons with OpenCV need it: the kernel tests (CUDA, Triton) must run without it
    import cv2
except ImportError:
    cv2 = None
needs_cv2 = pytest.mark.skipif(cv2 is None, reason="needs OpenCV (pip install opencv-python-headless)")


def _images(B, H, W, C, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (B, H, W, C), generator=g, dtype=torch.uint8)


def _smooth_images(B, H, W, C, seed):
    """Low-frequency content (random 9x9 grid, bicubic upsampled): interpolation schemes agree closely."""
    rng = np.random.default_rng(seed)
    out = [cv2.resize(rng.uniform(20, 235, (9, 9, C)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
           .reshape(H, W, C) for _ in range(B)]
    return torch.from_numpy(np.clip(np.stack(out), 0, 255).round().astype(np.uint8))


def _affine(kind, H, W, h, w, seed):
    """(3, 3) float64 dst_from_src of one kind, mapping a (W, H) image roughly onto a (w, h) output."""
    rng = np.random.default_rng(seed)
    S = np.diag([w / W, h / H, 1.0])
    if kind == "identity":
        return np.eye(3)
    if kind == "scale_up":
        A = np.diag([2.7, 3.3, 1.0])
    elif kind == "scale_down":
        A = np.diag([0.37, 0.45, 1.0])
    elif kind == "rotation":
        a = rng.uniform(-math.pi, math.pi)
        R = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        A = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]]) @ R @ S @ np.array([[1, 0, -W / 2], [0, 1, -H / 2], [0, 0, 1]])
    elif kind == "out_of_frame":
        A = np.array([[1.0, 0.0, 0.6 * w], [0.0, 1.0, -0.7 * h], [0, 0, 1]]) @ S
    else:  # random general affine
        A = np.eye(3)
        A[:2, :2] = rng.uniform(-1.5, 1.5, (2, 2)) + np.diag(rng.uniform(0.5, 1.5, 2))
        A[:2, 2] = rng.uniform(-0.3, 0.3, 2) * [w, h]
        A = A @ S
    return A


# --------------------------------------------------------------------------------------------
# the reference itself, against OpenCV


@pytest.mark.parametrize("C", [1, 3, 4])
def test_identity_reproduces_input(C):
    img = _images(2, 7, 5, C, seed=C)
    out = warp_align(img, np.eye(3), (7, 5), mean=None, std=None, backend="reference")
    assert out.image.dtype == torch.float32 and out.image.shape == (2, C, 7, 5)
    assert torch.equal(out.image, img.permute(0, 3, 1, 2).float())
    assert out.mask.all()
    if C == 3:
        norm = warp_align(img, np.eye(3), (7, 5), backend="reference").image
        m, s = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        assert_verbose_allclose(norm, (img.permute(0, 3, 1, 2) / 255.0 - m) / s, atol=1e-6)


@needs_cv2
@pytest.mark.parametrize("kind", ["scale_up", "scale_down", "rotation", "out_of_frame", "random"])
def test_reference_matches_cv2_warp_affine(kind):
    H, W, h, w = 33, 17, 29, 41
    img = _images(1, H, W, 3, seed=5)
    A = _affine(kind, H, W, h, w, seed=3)
    fill = (12.0, 200.0, 99.0)
    ours = warp_align(img, A, (h, w), mean=None, std=None, fill=fill, backend="reference").image[0].permute(1, 2, 0)
    ref = cv2.warpAffine(img[0].numpy(), A[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=fill)
    # OpenCV quantises the sample position to 1/32 pixel: up to ~255/64 per axis on noise images
    diff = (ours.double() - torch.from_numpy(ref).double()).abs()
    assert diff.max() <= 8.0 and diff.mean() < 1.5, (diff.max(), diff.mean())


def test_mask_definition():
    """Mask: sample point in [-0.5, W-0.5) x [-0.5, H-0.5); translations pick the edge pixels exactly."""
    img = _images(1, 4, 6, 1, seed=1)
    for t, first_in in ((0.4, 0), (0.6, 1), (-0.4, 0)):
        A = np.array([[1.0, 0, t], [0, 1.0, 0], [0, 0, 1]])  # output x = source x + t
        m = warp_align(img, A, (4, 8), mean=None, std=None, backend="reference").mask[0, 0]
        sx = np.arange(8) - t
        want = (sx >= -0.5) & (sx < 6 - 0.5)
        assert m.tolist() == want.tolist()
        assert m.nonzero()[0].item() == first_in


def test_nearest_uint8_copies_labels():
    lab = _images(2, 9, 11, 1, seed=4)
    A = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])  # 2x nearest upsampling: output 2x, 2x+1 <- x
    out = warp_align(lab, A, (18, 22), mode="nearest", out_dtype=torch.uint8, mean=None, std=None, fill=7,
                     backend="reference")
    assert out.image.dtype == torch.uint8
    want = lab.permute(0, 3, 1, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.equal(out.image, want) and out.mask.all()
    out = warp_align(lab, np.array([[1.0, 0, 3], [0, 1, 0], [0, 0, 1]]), (9, 11), mode="nearest",
                     out_dtype=torch.uint8, mean=None, std=None, fill=7, backend="reference")
    assert (out.image[:, :, :, :3] == 7).all() and torch.equal(out.image[:, 0, :, 3:], lab[..., 0][:, :, :8])
    assert not out.mask[:, :, :3].any() and out.mask[:, :, 3:].all()


def _random_K(rng, W, H):
    f = rng.uniform(0.6, 1.2) * W
    return np.array([[f, 0, W / 2 + rng.uniform(-3, 3)], [0, f * rng.uniform(0.95, 1.05), H / 2 + rng.uniform(-3, 3)],
                     [0, 0, 1]])


@needs_cv2
def test_radtan_matches_opencv():
    """Our distorted source points == cv2.projectPoints of the rays; image-level == initUndistortRectifyMap."""
    rng = np.random.default_rng(0)
    W, H = 64, 48
    K = _random_K(rng, W, H)
    for D in (np.array([-0.28, 0.07, 1e-3, -2e-3]), np.array([-0.3, 0.1, 5e-4, 1e-3, -0.02])):
        p = prepare(_images(1, H, W, 3, 0), np.eye(3), WarpOptions((H, W), None, None, K_src=K, dist=D))
        sx, sy = source_coordinates(p.params, p.dist_model, p.out_hw)
        mapx, mapy = cv2.initUndistortRectifyMap(K, D, None, K, (W, H), cv2.CV_32FC1)
        assert np.abs(sx[0].numpy() - mapx).max() < 1e-3 and np.abs(sy[0].numpy() - mapy).max() < 1e-3
        pts = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).reshape(-1, 2).astype(np.float64)
        rays = np.concatenate([(pts - K[:2, 2]) / [K[0, 0], K[1, 1]], np.ones((len(pts), 1))], 1)
        proj, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, D)
        got = torch.stack([sx[0], sy[0]], -1).reshape(-1, 2).numpy()
        assert np.abs(got - proj[:, 0]).max() < 1e-9


@needs_cv2
def test_fisheye_matches_opencv():
    rng = np.random.default_rng(1)
    W, H = 64, 48
    K = _random_K(rng, W, H) * [[0.5], [0.5], [1]] + [[0, 0, W / 4], [0, 0, H / 4], [0, 0, 0]]
    D = np.array([0.05, -0.01, 3e-3, -1e-3])
    p = prepare(_images(1, H, W, 3, 0), np.eye(3), WarpOptions((H, W), None, None, K_src=K, dist=D, dist_model="fisheye"))
    sx, sy = source_coordinates(p.params, p.dist_model, p.out_hw)
    pts = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).reshape(1, -1, 2).astype(np.float64)
    und = (pts - K[:2, 2]) / [K[0, 0], K[1, 1]]
    dist = cv2.fisheye.distortPoints(und, K, D)[0]
    got = torch.stack([sx[0], sy[0]], -1).reshape(-1, 2).numpy()
    assert np.abs(got - dist).max() < 1e-6
    mapx, mapy = cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), K, (W, H), cv2.CV_32FC1)
    assert np.abs(sx[0].numpy() - mapx).max() < 1e-3 and np.abs(sy[0].numpy() - mapy).max() < 1e-3


def _official_chain(img_hwc, K_src, K_tgt):
    """Being-H0's release: resize to 3840x2160, warpPerspective (H = K_tgt K_src^-1) to 1920x1080, resize to 448."""
    x = cv2.resize(img_hwc, (3840, 2160))
    x = cv2.warpPerspective(x, K_tgt @ np.linalg.inv(K_src), (1920, 1080), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.resize(x, (448, 448))


K_TGT = np.array([[736.6339, 0, 960], [0, 736.6339, 540], [0, 0, 1]])


def aligned_matrix(K_src, in_wh=(3840, 2160)):
    """The one affine of the official chain: input -> 3840x2160 -> K_tgt K_src^-1 -> 448x448."""
    return resize_matrix((1920, 1080), (448, 448)).numpy() @ K_TGT @ np.linalg.inv(K_src) @ resize_matrix(in_wh, (3840, 2160)).numpy()


@needs_cv2
def test_single_pass_matches_official_three_pass_chain():
    img = _smooth_images(1, 2160, 3840, 3, seed=2)
    K_src = np.array([[2304.0, 0, 1929], [0, 2304.0, 1071], [0, 0, 1]])  # a 3840x2160 camera, off-centre
    chain = torch.from_numpy(_official_chain(img[0].numpy(), K_src, K_TGT)).double()
    A = aligned_matrix(K_src)
    b = None  # auto: the fastest backend here
    out = warp_align(img, A, (448, 448), mean=None, std=None, backend=b)
    ours = out.image[0].permute(1, 2, 0).double()
    diff = (ours - chain).abs()
    # away from the image border (where the chain's two resamples blur the black edge differently)
    inner = -torch.nn.functional.max_pool2d(-out.mask.double()[None], 5, 1, 2)[0, 0] > 0
    assert 0.3 < out.mask.double().mean() < 0.95  # the border is in view: the test covers the crop/pad
    assert diff.mean() < 0.5 and diff[inner].max() < 4, (diff.mean(), diff[inner].max())
    # the composition matters: dropping the half-pixel terms of the final resize shifts content visibly
    wrong = np.diag([448 / 1920, 448 / 1080, 1]) @ K_TGT @ np.linalg.inv(K_src)
    off = warp_align(img, wrong, (448, 448), mean=None, std=None, backend=b).image[0].permute(1, 2, 0).double()
    assert (off - chain).abs().mean() > 2 * diff.mean()


# --------------------------------------------------------------------------------------------
# every backend against the float64 reference

KERNELS = [Backend.CPP, Backend.TRITON, Backend.CUDA]
TOL = {torch.float32: 1e-3, torch.float16: 4e-3, torch.bfloat16: 2.5e-2}


def _compare(backend, img, A, hw, *, out_dtype=torch.float32, mode="bilinear", K=None, D=None, dm="radtan", **kw):
    """Run ``backend`` and the float64 reference on the same input; tolerate differences only where the
    reference's sample point sits within 1e-4 px of a decision boundary (mask edge; nearest tie)."""
    dev = backend_device(backend)
    common = dict(out_dtype=out_dtype, mode=mode, K_src=K, dist=D, dist_model=dm, **kw)
    got = warp_align(img.to(dev), A, hw, backend=backend, **common)
    ref_dtype = torch.float64 if out_dtype != torch.uint8 else torch.uint8
    ref = warp_align(img, A, hw, backend="reference", **{**common, "out_dtype": ref_dtype})
    B, H, W, C = img.shape
    p = prepare(img, A, WarpOptions(hw, None, None, mode=mode, K_src=K, dist=D, dist_model=dm))
    sx, sy = source_coordinates(p.params, p.dist_model, hw)
    near = lambda s, n: ((s + 0.5).abs() < 1e-4) | ((s - (n - 0.5)).abs() < 1e-4)
    edge = near(sx, W) | near(sy, H)
    assert got.mask.view(torch.uint8).max() <= 1, "mask bytes not written (poison 0xFF left)"
    assert got.mask.dtype == torch.bool and got.mask.shape == ref.mask.shape
    bad = (got.mask.cpu() != ref.mask) & ~edge
    assert not bad.any(), f"mask differs at {bad.nonzero()[:5].tolist()}"
    tie = torch.zeros_like(edge)
    if mode == "nearest":
        frac = lambda s: (s + 0.5) - torch.floor(s + 0.5)
        tie = (frac(sx) < 1e-4) | (frac(sx) > 1 - 1e-4) | (frac(sy) < 1e-4) | (frac(sy) > 1 - 1e-4)
    keep = ~(edge | tie).unsqueeze(1).expand_as(ref.image)
    assert got.image.dtype == out_dtype and got.image.shape == ref.image.shape
    if out_dtype == torch.uint8:
        assert torch.equal(got.image.cpu()[keep], ref.image[keep])
    else:
        assert_verbose_allclose(got.image.cpu()[keep], ref.image[keep], atol=TOL[out_dtype], rtol=4e-3 if out_dtype == torch.bfloat16 else 0,
                                name=f"{backend.value} {out_dtype}")
    return got, ref


SIZES = [(1, 1), (7, 5), (33, 17), (48, 64)]


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
@pytest.mark.parametrize("kind", ["identity", "scale_up", "scale_down", "rotation", "out_of_frame", "random"])
def test_kernels_match_reference(backend, kind):
    skip_unless_available(backend)
    for i, (H, W) in enumerate(SIZES):
        C = (3, 1, 4, 3)[i]
        h, w = (H, W) if kind == "identity" else ((29, 41) if i % 2 else (16, 9))
        B = 2 if i % 2 else 1
        img = _images(B, H, W, C, seed=10 * i + len(kind))
        A = np.stack([_affine(kind, H, W, h, w, seed=i + j) for j in range(B)])
        fill = [float(5 + 40 * c) for c in range(C)]
        norm = dict(mean=[0.4] * C, std=[0.25] * C) if C != 3 else {}
        _compare(backend, img, A, (h, w), fill=fill, **norm)
        if i == 2:  # raw values and reduced-precision outputs on one awkward shape
            _compare(backend, img, A, (h, w), mean=None, std=None)
            _compare(backend, img, A, (h, w), out_dtype=torch.bfloat16, fill=fill, **norm)
            _compare(backend, img, A, (h, w), out_dtype=torch.float16, fill=fill, **norm)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_wide_rows(backend):
    """Rows of many interior pixels (the CPU's 16-pixel vector path) with borders in the same rows."""
    skip_unless_available(backend)
    for C, kind in ((3, "scale_down"), (1, "rotation"), (4, "random")):
        img = _images(2, 61, 123, C, seed=C)
        A = np.stack([_affine(kind, 61, 123, 50, 99, seed=s) for s in (C, C + 1)])
        norm = {} if C == 3 else dict(mean=[0.45] * C, std=[0.2] * C)
        _compare(backend, img, A, (50, 99), fill=[31.0] * C, **norm)
        _compare(backend, img, A, (50, 99), out_dtype=torch.bfloat16, fill=[31.0] * C, **norm)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_nearest(backend):
    skip_unless_available(backend)
    lab = _images(2, 33, 17, 1, seed=3)
    for kind in ("scale_up", "rotation", "random"):
        A = _affine(kind, 33, 17, 29, 41, seed=4)
        _compare(backend, lab, A, (29, 41), mode="nearest", out_dtype=torch.uint8, mean=None, std=None, fill=9)
        _compare(backend, lab, A, (29, 41), mode="nearest", mean=[0.5], std=[0.2], fill=9)
    # exact half-pixel ties (2x downsampling samples at 2x + 0.5) round up in every backend
    A = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1.0]])
    got = warp_align(lab.to(backend_device(backend)), A, (16, 8), mode="nearest", out_dtype=torch.uint8, mean=None, std=None,
                     backend=backend).image.cpu()
    assert torch.equal(got, lab[:, 1::2, 1::2][:, :16, :8].permute(0, 3, 1, 2))


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
@pytest.mark.parametrize("dm", ["radtan", "fisheye"])
def test_kernels_distortion(backend, dm):
    skip_unless_available(backend)
    rng = np.random.default_rng(7)
    H, W, h, w = 48, 64, 40, 56
    img = _images(2, H, W, 3, seed=8)
    K = np.stack([_random_K(rng, W, H) for _ in range(2)])
    if dm == "radtan":
        D = np.array([[-0.28, 0.07, 1e-3, -2e-3, 0.0], [-0.3, 0.1, 5e-4, 1e-3, -0.02]])
    else:
        D = np.array([[0.05, -0.01, 3e-3, -1e-3], [-0.02, 0.01, 0.0, 1e-3]])
    A = np.stack([_affine("random", H, W, h, w, seed=s) for s in (1, 2)])
    _compare(backend, img, A, (h, w), K=K, D=D, dm=dm)
    _compare(backend, img, A, (h, w), K=K, D=D, dm=dm, mode="nearest", out_dtype=torch.uint8, mean=None, std=None)


@pytest.mark.parametrize("backend", KERNELS, ids=lambda b: b.value)
def test_kernels_strided_and_empty(backend):
    skip_unless_available(backend)
    big = _images(3, 20, 30, 3, seed=2)
    img = big[::2, 3:18, 4:25]  # batch and row strides that are not the packed ones
    A = _affine("random", 15, 21, 11, 13, seed=5)
    _compare(backend, img, A, (11, 13))
    out = warp_align(img[:0].to(backend_device(backend)), np.zeros((0, 3, 3)), (4, 5), backend=backend)
    assert out.image.shape == (0, 3, 4, 5) and out.mask.shape == (0, 4, 5)
    out = warp_align(img.to(backend_device(backend)), A, (4, 5), backend=backend, return_mask=False)
    assert out.mask is None and torch.isfinite(out.image).all()


def test_opcheck_and_compile():
    skip_unless_available(Backend.CPP)
    from beingh0.ops.warp import _warp_align_op

    img = _images(2, 9, 7, 3, seed=1)
    params = prepare(img, _affine("random", 9, 7, 5, 6, 0), WarpOptions((5, 6), None, None)).params.float()
    chan = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3.0, 4.0, 5.0]
    for rm in (True, False):
        torch.library.opcheck(_warp_align_op, (img, params, chan, 5, 6, 0, 0, torch.float32, rm, "cpp"))
    A = torch.as_tensor(_affine("rotation", 9, 7, 5, 6, 0))
    f = torch.compile(lambda im, a: warp_align(im, a, (5, 6), backend="cpp"), fullgraph=True)
    got = f(img, A)
    ref = warp_align(img, A, (5, 6), backend="reference")
    assert_verbose_allclose(got.image, ref.image, atol=1e-3)
    assert torch.equal(got.mask, ref.mask)


def test_poison_is_on():
    """Kernel outputs start as NaN in the test run (tests/conftest.py), so unwritten elements fail."""
    from beingh0.ops._scaffold import poison_outputs

    assert poison_outputs()


# --------------------------------------------------------------------------------------------
# bad input


def _bad(match, *args, **kwargs):
    with pytest.raises((ValueError, TypeError), match=match):
        warp_align(*args, **kwargs)


def test_bad_inputs():
    img = _images(2, 8, 9, 3, 0)
    I = np.eye(3)
    _bad("channels-first", img.permute(0, 3, 1, 2), I, (4, 4))
    _bad("uint8", img.float(), I, (4, 4))
    _bad("batched", img[0], I, (4, 4))
    _bad("empty", img[:, :0], I, (4, 4))
    _bad("batch size 2", img, np.stack([I] * 3), (4, 4))
    _bad("affine", img, np.array([[1, 0, 0], [0, 1, 0], [1e-3, 0, 1]]), (4, 4))
    _bad("singular", img, np.array([[1, 2, 0], [2, 4, 0], [0, 0, 1.0]]), (4, 4))
    _bad("NaN", img, np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1.0]]), (4, 4))
    _bad("out_hw", img, I, (4,))
    _bad("positive", img, I, (0, 4))
    _bad("K_src", img, I, (4, 4), dist=np.zeros(4))
    _bad("focal", img, I, (4, 4), dist=np.zeros(4), K_src=np.diag([-1.0, 1, 1]))
    _bad("focal", img, I, (4, 4), dist=np.zeros(4), K_src=np.diag([0.0, 1, 1]))
    _bad("NaN", img, I, (4, 4), dist=np.zeros(4), K_src=np.diag([np.nan, 1, 1]))
    _bad("shape", img, I, (4, 4), dist=np.zeros(5), K_src=np.eye(3), dist_model="fisheye")
    _bad("dist_model", img, I, (4, 4), dist=np.zeros(4), K_src=np.eye(3), dist_model="kb8")
    _bad("channels", img[..., :1], I, (4, 4))  # ImageNet mean has 3 values
    _bad("std must be positive", img, I, (4, 4), std=(0.2, 0.0, 0.2))
    _bad("uint8", img, I, (4, 4), out_dtype=torch.uint8)
    _bad("mode", img, I, (4, 4), mode="bicubic")
    _bad("0..255", img, I, (4, 4), fill=300)
    _bad("both mean and std", img, I, (4, 4), mean=None)
    _bad("out_dtype", img, I, (4, 4), out_dtype=torch.int32)
    _bad("float64", img, I, (4, 4), out_dtype=torch.float64, backend="cpp")
    _bad("unknown backend", img, I, (4, 4), backend="opencl")


def test_list_of_differently_sized_images():
    from beingh0.ops.warp import warp_align_list

    imgs = [_images(1, 9, 13, 3, 1)[0], _images(1, 20, 7, 3, 2)[0]]
    A = np.stack([_affine("random", 9, 13, 6, 8, 0), _affine("rotation", 20, 7, 6, 8, 1)])
    out = warp_align_list(imgs, A, (6, 8), backend="reference")
    assert out.image.shape == (2, 3, 6, 8) and out.mask.shape == (2, 6, 8)
    for i in range(2):
        one = warp_align(imgs[i][None], A[i], (6, 8), backend="reference")
        assert torch.equal(out.image[i], one.image[0]) and torch.equal(out.mask[i], one.mask[0])


def test_triton_sizes_not_specialized():
    """Input sizes and strides (H = 1, W % 16 == 0, ...) must not compile a new kernel variant per video."""
    pytest.importorskip("triton")
    from beingh0.kernels.warp import _warp_kernel as kernel

    names = ({p.name for p in kernel.params if p.do_not_specialize} if hasattr(kernel, "params")
             else set(kernel.kwargs.get("do_not_specialize") or ()))
    assert {"H", "W", "stride_b", "stride_h"} <= names
