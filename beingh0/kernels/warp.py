"""Triton kernel of ``warp_align`` (spec: ``beingh0/ops/warp.py``; ABI: ``csrc/README.md``, "Op family warp").

Grid: (pixel blocks of the output plane, batch). Each program takes BLOCK output pixels of one
image: computes their source coordinates from the image's 16 float32 parameters (affine, then the
optional radtan/fisheye lens model), gathers the taps from the uint8 HWC image (masked loads;
taps outside read ``fill``), blends in float32, normalises and stores one coalesced vector per
channel plane of the CHW output. The math mirrors ``csrc/warp/warp.h`` line by line.

``atan`` (fisheye) is a Cephes-style float32 polynomial (max error 1.5e-7 rad on [0, 50]):
``tl`` has no atan that also runs under ``TRITON_INTERPRET=1``.

Block size: 256 on the GPU (first guess, pending a GPU sweep: none was available when this was
written); 4096 under the interpreter, whose cost grows with the number of programs.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _atan_pos(x):
    # atan for x >= 0: reduce to |t| <= tan(pi/8), then an odd polynomial (Cephes atanf coefficients)
    big = x > 2.414213562373095
    mid = (x > 0.4142135623730950) & (x <= 2.414213562373095)
    t = tl.where(big, -1.0 / tl.maximum(x, 1e-30), tl.where(mid, (x - 1.0) / (x + 1.0), x))
    y0 = tl.where(big, 1.5707963267948966, tl.where(mid, 0.7853981633974483, 0.0))
    z = t * t
    return y0 + ((((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * t + t)


@triton.jit
def _pick(c: tl.constexpr, a0, a1, a2, a3):
    v = a0
    if c == 1:
        v = a1
    if c == 2:
        v = a2
    if c == 3:
        v = a3
    return v


# Input sizes and strides vary per video (H = 1 or W % 16 == 0 would each be a new compile);
# the output size h, w is a fixed target.
@triton.jit(do_not_specialize=["H", "W", "stride_b", "stride_h"])
def _warp_kernel(src, params, out, mask_out, H, W, stride_b, stride_h, h, w,
                 s0, s1, s2, s3, b0, b1, b2, b3, f0, f1, f2, f3,
                 C: tl.constexpr, MODE: tl.constexpr, DIST: tl.constexpr, OUT_U8: tl.constexpr,
                 WRITE_MASK: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    npix = h * w
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    valid = offs < npix
    y = offs // w
    x = offs - y * w
    xf = x.to(tl.float32)
    yf = y.to(tl.float32)
    pp = params + b * 16
    u = tl.load(pp + 0) * xf + tl.load(pp + 1) * yf + tl.load(pp + 2)
    v = tl.load(pp + 3) * xf + tl.load(pp + 4) * yf + tl.load(pp + 5)
    if DIST == 0:
        sx = u
        sy = v
    else:
        k0 = tl.load(pp + 11)
        k1 = tl.load(pp + 12)
        k2 = tl.load(pp + 13)
        k3 = tl.load(pp + 14)
        if DIST == 1:  # OpenCV radial-tangential: k1 k2 p1 p2 k3
            k4 = tl.load(pp + 15)
            r2 = u * u + v * v
            radial = 1.0 + r2 * (k0 + r2 * (k1 + r2 * k4))
            xd = u * radial + 2.0 * k2 * u * v + k3 * (r2 + 2.0 * u * u)
            yd = v * radial + k2 * (r2 + 2.0 * v * v) + 2.0 * k3 * u * v
        else:  # cv2.fisheye equidistant: k1..k4
            r = tl.sqrt(u * u + v * v)
            th = _atan_pos(r)
            t2 = th * th
            thd = th * (1.0 + t2 * (k0 + t2 * (k1 + t2 * (k2 + t2 * k3))))
            s = tl.where(r > 1e-8, thd / tl.maximum(r, 1e-8), 1.0)
            xd = u * s
            yd = v * s
        sx = tl.load(pp + 6) * xd + tl.load(pp + 7) * yd + tl.load(pp + 8)
        sy = tl.load(pp + 9) * yd + tl.load(pp + 10)
    Wf = W * 1.0
    Hf = H * 1.0
    if WRITE_MASK:
        inside = (sx >= -0.5) & (sx < Wf - 0.5) & (sy >= -0.5) & (sy < Hf - 0.5)
        tl.store(mask_out + b * npix + offs, inside.to(tl.uint8), mask=valid)
    cx = tl.minimum(tl.maximum(sx, -4.0), Wf + 4.0)
    cy = tl.minimum(tl.maximum(sy, -4.0), Hf + 4.0)
    img = src + b * stride_b
    out_b = out + b * C * npix
    if MODE == 1:  # nearest: floor(s + 0.5)
        ix = tl.floor(cx + 0.5).to(tl.int32)
        iy = tl.floor(cy + 0.5).to(tl.int32)
        ok = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
        base = iy.to(tl.int64) * stride_h + ix * C
        for c in tl.static_range(C):
            t = tl.load(img + base + c, mask=valid & ok, other=0).to(tl.float32)
            val = tl.where(ok, t, _pick(c, f0, f1, f2, f3))
            if OUT_U8:
                tl.store(out_b + c * npix + offs, (val + 0.5).to(tl.uint8), mask=valid)
            else:
                res = val * _pick(c, s0, s1, s2, s3) + _pick(c, b0, b1, b2, b3)
                tl.store(out_b + c * npix + offs, res.to(out.dtype.element_ty), mask=valid)
    else:
        fx0 = tl.floor(cx)
        fy0 = tl.floor(cy)
        ax = cx - fx0
        ay = cy - fy0
        x0 = fx0.to(tl.int32)
        y0 = fy0.to(tl.int32)
        inx0 = (x0 >= 0) & (x0 < W)
        inx1 = (x0 + 1 >= 0) & (x0 + 1 < W)
        iny0 = (y0 >= 0) & (y0 < H)
        iny1 = (y0 + 1 >= 0) & (y0 + 1 < H)
        w00 = (1.0 - ax) * (1.0 - ay)
        w01 = ax * (1.0 - ay)
        w10 = (1.0 - ax) * ay
        w11 = ax * ay
        r0 = y0.to(tl.int64) * stride_h + x0 * C
        r1 = r0 + stride_h
        for c in tl.static_range(C):
            fc = _pick(c, f0, f1, f2, f3)
            t00 = tl.where(iny0 & inx0, tl.load(img + r0 + c, mask=valid & iny0 & inx0, other=0).to(tl.float32), fc)
            t01 = tl.where(iny0 & inx1, tl.load(img + r0 + C + c, mask=valid & iny0 & inx1, other=0).to(tl.float32), fc)
            t10 = tl.where(iny1 & inx0, tl.load(img + r1 + c, mask=valid & iny1 & inx0, other=0).to(tl.float32), fc)
            t11 = tl.where(iny1 & inx1, tl.load(img + r1 + C + c, mask=valid & iny1 & inx1, other=0).to(tl.float32), fc)
            val = w00 * t00 + w01 * t01 + w10 * t10 + w11 * t11
            res = val * _pick(c, s0, s1, s2, s3) + _pick(c, b0, b1, b2, b3)
            tl.store(out_b + c * npix + offs, res.to(out.dtype.element_ty), mask=valid)


def warp_align_triton(images: torch.Tensor, params: torch.Tensor, chan, out: torch.Tensor, mask, mode: int,
                      dist_model: int, *, block: int | None = None) -> None:
    """Write ``out`` (B, C, h, w) and ``mask`` (B, h, w) bool or None, in place.

    images (B, H, W, C) uint8 with packed pixels (channel stride 1, pixel stride C; any row and
    batch stride); params (B, 16) float32 on the same device; chan: scale, bias, fill (C floats
    each). Validation happens in ``beingh0.ops.warp`` (this is not a public entry point).
    """
    B, H, W, C = images.shape
    _, _, h, w = out.shape
    if images.device != out.device or params.device != images.device:
        raise ValueError("warp_align_triton: images, params and out must be on one device")
    if images.dtype != torch.uint8 or images.stride(3) != 1 or images.stride(2) != C:
        raise ValueError("warp_align_triton: images must be uint8 (B, H, W, C) with packed pixels")
    if B == 0:
        return
    sc, bi, fi = list(chan[:C]) + [0.0] * (4 - C), list(chan[C:2 * C]) + [0.0] * (4 - C), list(chan[2 * C:]) + [0.0] * (4 - C)
    block = block or (4096 if _INTERPRET else 256)
    grid = (triton.cdiv(h * w, block), B)
    m = mask.view(torch.uint8) if mask is not None else out  # dummy pointer when no mask is written
    _warp_kernel[grid](images, params, out, m, H, W, images.stride(0), images.stride(1), h, w, *sc, *bi, *fi,
                       C=C, MODE=mode, DIST=dist_model, OUT_U8=out.dtype == torch.uint8,
                       WRITE_MASK=mask is not None, BLOCK=block)
