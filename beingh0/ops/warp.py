"""The ``warp`` op family: weak-perspective image alignment in one resampling pass.

``warp_align`` takes uint8 HWC images and, per image, an affine map ``dst_from_src`` from
*undistorted* source pixel coordinates to output pixel coordinates, and writes the resampled,
normalised CHW tensor the vision encoder eats — the official release needs three CPU OpenCV passes
(resize to 3840x2160, warpPerspective with H = K_tgt K_src^-1, resize to 448x448) and a normalise
for the same thing (ENGINEERING.md section 4); all of them are affine, so one resample does it.

Conventions (every backend keeps them; tests check each against the float64 reference):

* Pixel centres sit at integer coordinates (OpenCV): pixel (x, y) covers [x-0.5, x+0.5) x
  [y-0.5, y+0.5). Output pixel (x, y) samples the source at ``inverse(dst_from_src) @ (x, y, 1)``.
  To compose a resize from (W, H) to (w, h) in this convention use
  ``[[w/W, 0, 0.5*w/W - 0.5], [0, h/H, 0.5*h/H - 0.5], [0, 0, 1]]`` (``resize_matrix``).
* Bilinear: the four taps around the sample point; taps outside the image read ``fill`` (like
  cv2's BORDER_CONSTANT). Nearest: the tap ``floor(s + 0.5)`` per axis (ties round up), ``fill``
  when it lies outside.
* ``mask`` is True where the sample point lies on the source image: ``-0.5 <= sx < W - 0.5`` and
  ``-0.5 <= sy < H - 0.5`` (exactly where the nearest tap is inside the image). With bilinear
  sampling a masked pixel near the edge may blend up to half of ``fill``; an unmasked one is pure fill.
* Normalisation: ``out = (value / 255 - mean) / std`` per channel, mean/std on the [0, 1] scale;
  ``fill`` is in 0..255 units and normalised like any pixel. ``mean=std=None``: raw 0..255 floats.
* Lens distortion (``dist`` with ``K_src``): the undistorted source point p_und is mapped to the
  normalised ray ``K_src^-1 p_und``, distorted with OpenCV's model (``radtan``: k1, k2, p1, p2[, k3]
  as ``cv2.undistortPoints``; ``fisheye``: k1..k4 as ``cv2.fisheye``), and projected back with
  ``K_src`` to the pixel that is read. So undistortion and alignment are one pass; a different
  virtual camera for the undistorted image is just part of ``dst_from_src``
  (``K_new @ inverse(K_src)`` is affine).

Backends (``beingh0.ops.Backend``): the float64 reference (coordinates in plain torch, sampling by
``grid_sample``), C++ CPU (``csrc/warp``, OpenMP over output rows), CUDA (one thread per output
pixel) and Triton (``beingh0/kernels/warp.py``). The kernel backends run through the
``beingh0::warp_align`` custom op (with a fake implementation, so ``torch.compile`` can trace
them); no autograd, the input is uint8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch

from ._scaffold import DTYPE_CODES, call_op, launch, new_output
from .backend import Backend, load_kernel_module, resolve

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "WarpOutput", "WarpOptions", "WarpParams", "prepare", "resize_matrix",
           "source_coordinates", "warp_align", "warp_align_list", "warp_align_reference"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_SUPPORTED = (Backend.REFERENCE, Backend.CPP, Backend.CUDA, Backend.TRITON)
#: output dtypes of the kernels (codes: csrc/common/status.h via ``_scaffold.DTYPE_CODES``)
_OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.uint8)
_MODES = {"bilinear": 0, "nearest": 1}
_DIST_MODELS = {"none": 0, "radtan": 1, "fisheye": 2}
#: Per-image float32 parameters handed to the kernels (layout in csrc/README.md, "Op family warp"):
#: m00 m01 m02 m10 m11 m12 (output pixel -> undistorted source pixel, or -> normalised ray when a
#: distortion model is on), fx skew cx fy cy (K_src), k0..k4 (distortion coefficients).
NUM_PARAMS = 16


@dataclass(frozen=True)
class WarpOptions:
    """What a ``warp_align`` call asks for besides the images and the matrices: its keyword arguments
    (documented there), checked by ``prepare``."""

    out_hw: tuple[int, int]
    mean: Any = IMAGENET_MEAN
    std: Any = IMAGENET_STD
    out_dtype: torch.dtype = torch.float32
    mode: str = "bilinear"
    fill: Any = 0.0
    K_src: Any = None
    dist: Any = None
    dist_model: str = "radtan"


@dataclass(frozen=True)
class WarpParams:
    """The validated, packed inputs of the kernels (``prepare``'s result)."""

    params: torch.Tensor
    """(B, ``NUM_PARAMS``) float64 on the matrices' device: the per-image map (layout above)."""
    scale: tuple[float, ...]
    """C per-channel factors of the normalisation: out = value * scale + bias."""
    bias: tuple[float, ...]
    fill: tuple[float, ...]
    """C values (0..255) of samples outside the image."""
    mode: int
    """``_MODES`` code (0 bilinear, 1 nearest)."""
    dist_model: int
    """``_DIST_MODELS`` code (0 none, 1 radtan, 2 fisheye)."""
    out_hw: tuple[int, int]
    out_dtype: torch.dtype

    @property
    def chan(self) -> list[float]:
        """scale + bias + fill: the 3C per-channel floats the kernels take."""
        return [*self.scale, *self.bias, *self.fill]


class WarpOutput(NamedTuple):
    image: torch.Tensor
    """(B, C, h, w) in ``out_dtype``."""
    mask: torch.Tensor | None
    """(B, h, w) bool, True where the sample point lies on the source image; None if not asked for."""


def resize_matrix(src_wh: Sequence[float], dst_wh: Sequence[float], dtype=torch.float64) -> torch.Tensor:
    """(3, 3) affine of a resize from ``src_wh`` to ``dst_wh`` in the pixel-centre convention (cv2.resize)."""
    sx, sy = dst_wh[0] / src_wh[0], dst_wh[1] / src_wh[1]
    return torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=dtype)


# --------------------------------------------------------------------------------------------
# validation and parameter packing (plain torch, float64)


def _as_matrices(op: str, name: str, x, B: int, shape_hint: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not (t.is_floating_point()):
        raise TypeError(f"{op}: {name} must be a float tensor {shape_hint}, got dtype {t.dtype}")
    t = t.to(torch.float64)
    if t.dim() == 2:
        t = t.unsqueeze(0).expand(B, *t.shape)
    if t.dim() != 3 or t.shape[1:] != (3, 3):
        raise ValueError(f"{op}: {name} must have shape {shape_hint} (or (3, 3) for the whole batch), got {tuple(t.shape)}")
    if t.shape[0] != B:
        raise ValueError(f"{op}: {name} has {t.shape[0]} matrices but images has batch size {B}; pass one per image")
    return t


def _channel_vector(op: str, name: str, x, C: int) -> tuple[float, ...]:
    """C Python floats from a scalar or sequence (no tensors: keeps torch.compile free of graph breaks)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().reshape(-1).tolist()
    vals = [float(x)] if isinstance(x, (int, float)) else [float(v) for v in x]
    if len(vals) == 1:
        vals = vals * C
    if len(vals) != C:
        raise ValueError(f"{op}: {name} has {len(vals)} values but the images have {C} channels; pass {C} values "
                         f"(or one for all), or mean=None, std=None to skip normalisation")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{op}: {name} contains NaN or inf: {vals}")
    return tuple(vals)


def _check_images(op: str, images) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{op}: images must be a torch.Tensor (B, H, W, C) uint8, got {type(images).__name__}; "
                        "use torch.from_numpy(array) for numpy images")
    if images.dim() == 3 and images.shape[-1] in (1, 3, 4):
        raise ValueError(f"{op}: images must be batched (B, H, W, C), got {tuple(images.shape)}; use images[None] for one image")
    if images.dim() != 4:
        raise ValueError(f"{op}: images must have shape (B, H, W, C) (HWC, uint8), got {tuple(images.shape)}")
    B, H, W, C = images.shape
    if C not in (1, 3, 4):
        if images.shape[1] in (1, 3, 4):
            raise ValueError(f"{op}: images of shape {tuple(images.shape)} look channels-first (B, C, H, W); this op takes "
                             "channels-last uint8 (B, H, W, C): pass images.permute(0, 2, 3, 1)")
        raise ValueError(f"{op}: images must have 1, 3 or 4 channels in the last dim (B, H, W, C), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        hint = " (float images in [0, 1]: (x * 255).round().to(torch.uint8))" if images.is_floating_point() else ""
        raise TypeError(f"{op}: images must be uint8, got {images.dtype}{hint}")
    if H == 0 or W == 0:
        raise ValueError(f"{op}: images are empty (H={H}, W={W}); drop empty frames before warping")


def prepare(images, dst_from_src, options: WarpOptions, *, check: bool = True, op: str = "warp_align") -> WarpParams:
    """Validate everything and pack the kernels' inputs (``check``: also the matrices' values)."""
    o = options
    out_hw, mean, std, out_dtype, mode, fill = o.out_hw, o.mean, o.std, o.out_dtype, o.mode, o.fill
    K_src, dist, dist_model = o.K_src, o.dist, o.dist_model
    _check_images(op, images)
    B, H, W, C = images.shape
    if not (isinstance(out_hw, (tuple, list)) and len(out_hw) == 2 and all(isinstance(v, int) for v in out_hw)):
        raise ValueError(f"{op}: out_hw must be a pair of ints (h, w), got {out_hw!r}")
    h, w = int(out_hw[0]), int(out_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: out_hw must be positive, got {(h, w)}")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be 'bilinear' or 'nearest' (masks, labels), got {mode!r}")
    if out_dtype not in _OUT_DTYPES and out_dtype != torch.float64:
        raise TypeError(f"{op}: out_dtype must be torch.float32, bfloat16, float16 (or uint8 with mode='nearest'; "
                        f"float64 with backend='reference'), got {out_dtype}")
    if (mean is None) != (std is None):
        raise ValueError(f"{op}: give both mean and std, or neither (mean=None, std=None: raw 0..255 values)")
    if out_dtype == torch.uint8 and (mode != "nearest" or mean is not None):
        raise ValueError(f"{op}: out_dtype=torch.uint8 needs mode='nearest' and mean=None, std=None (it copies pixels "
                         "unchanged, e.g. masks and label maps)")
    fill_t = _channel_vector(op, "fill", fill, C)
    if any(v < 0 or v > 255 for v in fill_t):
        raise ValueError(f"{op}: fill is in pixel units 0..255, got {list(fill_t)}")
    if out_dtype == torch.uint8 and any(v != round(v) for v in fill_t):
        raise ValueError(f"{op}: a uint8 output needs an integer fill, got {list(fill_t)}")
    if mean is None:
        scale, bias = (1.0,) * C, (0.0,) * C
    else:
        m, sd = _channel_vector(op, "mean", mean, C), _channel_vector(op, "std", std, C)
        if any(v <= 0 for v in sd):
            raise ValueError(f"{op}: std must be positive, got {list(sd)}")
        scale, bias = tuple(1.0 / (255.0 * v) for v in sd), tuple(-a / v for a, v in zip(m, sd))

    A = _as_matrices(op, "dst_from_src", dst_from_src, B, f"({B}, 3, 3)")
    dev = A.device
    data_checks = check and not torch.compiler.is_compiling()
    if data_checks and B:
        if not bool(torch.isfinite(A).all()):
            raise ValueError(f"{op}: dst_from_src contains NaN or inf (image {int((~torch.isfinite(A)).flatten(1).any(1).nonzero()[0])})")
        last = A[:, 2, :] - A.new_tensor([0.0, 0.0, 1.0])
        if bool((last.abs() > 1e-9).any()):
            raise ValueError(f"{op}: dst_from_src must be affine (last row 0, 0, 1), got last rows "
                             f"{A[:, 2, :][(last.abs() > 1e-9).any(1)][:3].tolist()}; a projective map is not a weak-"
                             "perspective alignment (divide by A[2, 2] if that is only a scale)")
        det = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
        size = A[:, :2, :2].abs().amax((1, 2)).clamp_min(1e-300)
        if bool((det.abs() <= 1e-12 * size * size).any()):
            i = int((det.abs() <= 1e-12 * size * size).nonzero()[0])
            raise ValueError(f"{op}: dst_from_src[{i}] is singular (det {det[i].item():.3g}); it must map the image "
                             "onto a region of the output, not a line or point")
    # output pixel -> undistorted source pixel: the inverse of the 2x2 part and translation
    L = A[:, :2, :2]
    Linv = torch.linalg.inv(L)
    M = torch.cat([Linv, -(Linv @ A[:, :2, 2:3])], dim=2)  # (B, 2, 3)

    dm = "none" if dist is None else dist_model
    if dm not in ("none", "radtan", "fisheye"):
        raise ValueError(f"{op}: dist_model must be 'radtan' (OpenCV k1,k2,p1,p2[,k3]) or 'fisheye' (cv2.fisheye k1..k4), got {dist_model!r}")
    kvec = torch.zeros(B, 5, dtype=torch.float64, device=dev)
    kcam = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64, device=dev).expand(B, 5)
    if dist is not None:
        if K_src is None:
            raise ValueError(f"{op}: dist was given without K_src; the distortion model acts on normalised rays, pass the "
                             "source intrinsics K_src (B, 3, 3)")
        K = _as_matrices(op, "K_src", K_src, B, f"({B}, 3, 3)").to(dev)
        d = torch.as_tensor(dist)
        if not d.is_floating_point():
            raise TypeError(f"{op}: dist must be a float tensor, got {d.dtype}")
        d = d.to(device=dev, dtype=torch.float64)
        if d.dim() == 1:
            d = d.unsqueeze(0).expand(B, -1)
        ncoef = (4, 5) if dm == "radtan" else (4,)
        if d.dim() != 2 or d.shape[0] != B or d.shape[1] not in ncoef:
            raise ValueError(f"{op}: dist for {dm!r} must have shape ({B}, {' or '.join(map(str, ncoef))}), got {tuple(d.shape)}")
        if data_checks and B:
            if not bool(torch.isfinite(K).all()) or not bool(torch.isfinite(d).all()):
                raise ValueError(f"{op}: K_src or dist contains NaN or inf")
            fx, fy = K[:, 0, 0], K[:, 1, 1]
            if bool(((fx <= 0) | (fy <= 0)).any()):
                raise ValueError(f"{op}: K_src focal lengths must be positive, got fx={fx.tolist()[:4]}, fy={fy.tolist()[:4]}")
            lower = torch.stack([K[:, 1, 0], K[:, 2, 0], K[:, 2, 1], K[:, 2, 2] - 1], 1)
            if bool((lower.abs() > 1e-9).any()):
                raise ValueError(f"{op}: K_src must be an intrinsics matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")
        kvec[:, : d.shape[1]] = d
        kcam = torch.stack([K[:, 0, 0], K[:, 0, 1], K[:, 0, 2], K[:, 1, 1], K[:, 1, 2]], 1)
        # fold K_src^-1 into the affine: output pixel -> normalised ray (x, y, 1)
        Kinv = torch.linalg.inv(K)
        M = (Kinv @ torch.cat([M, M.new_tensor([0.0, 0.0, 1.0]).expand(B, 1, 3)], 1))[:, :2]
    params = torch.cat([M.reshape(B, 6), kcam, kvec], dim=1)
    return WarpParams(params, scale, bias, fill_t, _MODES[mode], _DIST_MODELS[dm], (h, w), out_dtype)


# --------------------------------------------------------------------------------------------
# reference (float64, readable)


def source_coordinates(params: torch.Tensor, dist_model: int, out_hw) -> tuple[torch.Tensor, torch.Tensor]:
    """Source pixel coordinates (sx, sy), each (B, h, w) in params' dtype, of every output pixel."""
    h, w = out_hw
    B = params.shape[0]
    p = params
    ys = torch.arange(h, dtype=p.dtype, device=p.device).view(1, h, 1)
    xs = torch.arange(w, dtype=p.dtype, device=p.device).view(1, 1, w)
    c = lambda i: p[:, i].view(B, 1, 1)
    # 1. output pixel -> undistorted source pixel (or the normalised ray when a lens model is on)
    u = c(0) * xs + c(1) * ys + c(2)
    v = c(3) * xs + c(4) * ys + c(5)
    if dist_model == 0:
        return u.expand(B, h, w), v.expand(B, h, w)
    k = [c(11 + i) for i in range(5)]
    if dist_model == 1:  # 2. OpenCV radial-tangential (cv2.projectPoints / undistortPoints)
        r2 = u * u + v * v
        radial = 1 + k[0] * r2 + k[1] * r2 * r2 + k[4] * r2 * r2 * r2
        xd = u * radial + 2 * k[2] * u * v + k[3] * (r2 + 2 * u * u)
        yd = v * radial + k[2] * (r2 + 2 * v * v) + 2 * k[3] * u * v
    else:  # 2. OpenCV equidistant fisheye (cv2.fisheye.distortPoints)
        r = torch.sqrt(u * u + v * v)
        th = torch.atan(r)
        t2 = th * th
        thd = th * (1 + k[0] * t2 + k[1] * t2 ** 2 + k[2] * t2 ** 3 + k[3] * t2 ** 4)
        s = torch.where(r > 1e-12, thd / r.clamp_min(1e-12), torch.ones_like(r))
        xd, yd = u * s, v * s
    # 3. back to source pixels with K_src
    return c(6) * xd + c(7) * yd + c(8), c(9) * yd + c(10)


def _reference(images, p: WarpParams, return_mask: bool) -> WarpOutput:
    params, scale, bias, fill, mode, dist_model = p.params, p.scale, p.bias, p.fill, p.mode, p.dist_model
    out_hw, out_dtype = p.out_hw, p.out_dtype
    B, H, W, C = images.shape
    dev = images.device
    sx, sy = source_coordinates(params.to(dev, torch.float64), dist_model, out_hw)
    img = images.permute(0, 3, 1, 2).to(torch.float64)  # (B, C, H, W)
    f = torch.tensor(fill, dtype=torch.float64, device=dev).view(1, C, 1, 1)
    if mode == 0:
        # grid_sample, align_corners=False: pixel x <-> (2x + 1) / W - 1. Its zero padding on
        # (img - fill), plus fill, makes taps outside the image read fill (weights sum to 1).
        grid = torch.stack([(2 * sx + 1) / W - 1, (2 * sy + 1) / H - 1], dim=-1)
        val = torch.nn.functional.grid_sample(img - f, grid, mode="bilinear", padding_mode="zeros",
                                              align_corners=False) + f
    else:
        # explicit gather: grid_sample's nearest rounds half to even, we round half up (floor(s + 0.5))
        ix, iy = torch.floor(sx + 0.5), torch.floor(sy + 0.5)
        inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
        flat = (iy.clamp(0, H - 1) * W + ix.clamp(0, W - 1)).long().view(B, 1, -1).expand(B, C, -1)
        val = torch.gather(img.reshape(B, C, H * W), 2, flat).view(B, C, *out_hw)
        val = torch.where(inside.unsqueeze(1), val, f.expand_as(val))
    if out_dtype == torch.uint8:
        out = val.round().to(torch.uint8)
    else:
        sc = torch.tensor(scale, dtype=torch.float64, device=dev).view(1, C, 1, 1)
        bi = torch.tensor(bias, dtype=torch.float64, device=dev).view(1, C, 1, 1)
        out = (val * sc + bi).to(out_dtype)
    mask = None
    if return_mask:
        mask = (sx >= -0.5) & (sx < W - 0.5) & (sy >= -0.5) & (sy < H - 0.5)
    return WarpOutput(out, mask)


def warp_align_reference(images, dst_from_src, out_hw, *, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         out_dtype=torch.float32, mode: str = "bilinear", fill=0.0, K_src=None, dist=None,
                         dist_model: str = "radtan", return_mask: bool = True, check: bool = True) -> WarpOutput:
    """The spec of every backend (arguments as ``warp_align``): coordinates in float64 plain torch,
    sampling by ``grid_sample`` (bilinear) or a gather (nearest); ``out_dtype`` may be float64."""
    opts = WarpOptions(out_hw, mean, std, out_dtype, mode, fill, K_src, dist, dist_model)
    return _reference(images, prepare(images, dst_from_src, opts, check=check, op="warp_align_reference"), return_mask)


# --------------------------------------------------------------------------------------------
# kernel backends and the custom op


def _kernel(images, params, chan: list[float], out_h: int, out_w: int, mode: int, dist_model: int,
            out_dtype: torch.dtype, return_mask: bool, backend: str):
    b = Backend(backend)
    B, H, W, C = images.shape
    out = new_output((B, C, out_h, out_w), out_dtype, images.device)
    mask = new_output((B, out_h, out_w) if return_mask else (0,), torch.bool, images.device)
    if B == 0:
        return out, mask
    if images.stride(3) != 1 or images.stride(2) != C or (B > 1 and images.stride(0) < H * images.stride(1)):
        images = images.contiguous()  # the kernels take any row and batch stride, but packed pixels
    params = params.to(device=images.device, dtype=torch.float32).contiguous()
    if b is Backend.TRITON:
        load_kernel_module("warp").warp_align_triton(images, params, chan, out, mask if return_mask else None,
                                                     mode, dist_model)
        return out, mask
    host = torch.tensor(chan, dtype=torch.float32)  # scale (C), bias (C), fill (C): host memory for both kernels
    launch("warp_align", b, images.device, images.data_ptr(), B, H, W, C, images.stride(0), images.stride(1),
           params.data_ptr(), mode, dist_model, host.data_ptr(), host.data_ptr() + 4 * C, host.data_ptr() + 8 * C,
           out_h, out_w, DTYPE_CODES[out_dtype], out.data_ptr(), mask.data_ptr() if return_mask else 0)
    return out, mask


@torch.library.custom_op("beingh0::warp_align", mutates_args=())
def _warp_align_op(images: torch.Tensor, params: torch.Tensor, chan: list[float], out_h: int, out_w: int, mode: int,
                   dist_model: int, out_dtype: torch.dtype, return_mask: bool, backend: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """images (B, H, W, C) uint8, params (B, 16) (``NUM_PARAMS``), chan = scale + bias + fill (3C floats)."""
    return _kernel(images, params, chan, out_h, out_w, mode, dist_model, out_dtype, return_mask, backend)


@_warp_align_op.register_fake
def _(images, params, chan, out_h, out_w, mode, dist_model, out_dtype, return_mask, backend):
    B, H, W, C = images.shape
    out = images.new_empty((B, C, out_h, out_w), dtype=out_dtype)
    return out, images.new_empty((B, out_h, out_w) if return_mask else (0,), dtype=torch.bool)


# --------------------------------------------------------------------------------------------
# public function


def warp_align(images, dst_from_src, out_hw, *, mean=IMAGENET_MEAN, std=IMAGENET_STD, out_dtype=torch.float32,
               mode: str = "bilinear", fill=0.0, K_src=None, dist=None, dist_model: str = "radtan",
               return_mask: bool = True, backend=None, check: bool = True) -> WarpOutput:
    """Resample, (undistort,) align and normalise a batch of images in one pass.

    Args:
        images: (B, H, W, C) uint8, channels last, C in 1, 3, 4.
        dst_from_src: (B, 3, 3) or (3, 3) affine (last row 0, 0, 1), float: undistorted source
            pixel -> output pixel, pixel centres at integer coordinates (module docstring). For
            Being-H0's alignment: ``resize_matrix((1920, 1080), (448, 448)) @ K_tgt @ inverse(K_src)``.
        out_hw: (h, w) of the output.
        mean, std: per-channel normalisation on the [0, 1] scale (C values, or one); both None: none.
        out_dtype: float32, bfloat16, float16; uint8 only with ``mode='nearest'`` and no normalisation;
            float64 only with the reference backend (tests).
        mode: 'bilinear' (images) or 'nearest' (masks, label maps).
        fill: value of samples outside the image, 0..255 (one, or one per channel), normalised like pixels.
        K_src: (B, 3, 3) or (3, 3) source intrinsics; required with ``dist``.
        dist: (B, 4|5) or (4|5,) distortion coefficients of ``dist_model`` ('radtan' as OpenCV:
            k1, k2, p1, p2[, k3]; 'fisheye' as cv2.fisheye: k1..k4).
        return_mask: also return the (B, h, w) bool mask of samples that came from the image.
        backend: None (``$BEINGH0_BACKEND`` or auto), or a ``Backend``/its name.
        check: validate the matrices' values (NaN, singular, projective, focal lengths) too; shapes and
            dtypes are always checked. Skipped automatically under ``torch.compile``.

    Returns:
        ``WarpOutput(image (B, C, h, w) out_dtype, mask (B, h, w) bool or None)`` on the images' device.
    """
    op = "warp_align"
    p = prepare(images, dst_from_src, WarpOptions(out_hw, mean, std, out_dtype, mode, fill, K_src, dist, dist_model),
                check=check, op=op)
    b = resolve(op, backend, images.device.type, _SUPPORTED)
    if b is Backend.REFERENCE:
        return _reference(images, p, return_mask)
    if out_dtype == torch.float64:
        raise TypeError(f"{op}: out_dtype=torch.float64 is only offered by backend='reference' (the kernels compute "
                        "in float32); use float32")
    if b is Backend.CPP and images.device.type != "cpu":
        raise ValueError(f"{op}: the C++ backend takes CPU images, got {images.device}")
    # no autograd for uint8 input: only torch.compile goes through the custom op
    out, mask = call_op(_warp_align_op, _kernel, images, p.params, p.chan, p.out_hw[0], p.out_hw[1], p.mode,
                        p.dist_model, out_dtype, return_mask, b.value)
    return WarpOutput(out, mask if return_mask else None)


def warp_align_list(images: Sequence[torch.Tensor], dst_from_src, out_hw, **kwargs) -> WarpOutput:
    """``warp_align`` over differently sized (H, W, C) images: one call each, outputs stacked.

    ``dst_from_src``, ``K_src`` and ``dist`` hold one entry per image.
    """
    if len(images) == 0:
        raise ValueError("warp_align_list: no images given")
    per = {k: kwargs.pop(k) for k in ("K_src", "dist") if kwargs.get(k) is not None}
    outs, masks = [], []
    for i, im in enumerate(images):
        if not isinstance(im, torch.Tensor) or im.dim() != 3:
            raise ValueError(f"warp_align_list: images[{i}] must be one (H, W, C) uint8 tensor, got "
                             f"{tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__}")
        extra = {k: torch.as_tensor(v)[i : i + 1] for k, v in per.items()}
        o = warp_align(im[None], torch.as_tensor(dst_from_src)[i : i + 1], out_hw, **kwargs, **extra)
        outs.append(o.image)
        masks.append(o.mask)
    return WarpOutput(torch.cat(outs), torch.cat(masks) if masks[0] is not None else None)
