"""Triton kernels for the MANO forward pass (``mano_joints`` and ``mano_forward``), forward only.

Spec: ``beingh0/core/lbs.py: mano_lbs``; packed-constant layout: ``csrc/README.md`` (the same
layout as the C++ ABI, as torch tensors). Autograd goes through the C++/CUDA backward.

Two kernels:

* ``_mano_chain_kernel`` (grid: batch blocks). Every value is a (BLOCK_B, 16) tile whose column
  is a joint (or a fingertip): one shape, hence one register layout, for the whole kernel (mixing
  1-D vectors with 2-D tiles of other shapes made Triton's layout passes take ~40 s to compile).
  Rodrigues runs on the pose tiles; the parent gather of the kinematic chain is an exact tl.dot
  with a 0/1 matrix, two rounds of pointer doubling (the tree has depth 3); the 5 fingertip
  vertices are blended and skinned with K = 16 tl.dot. It writes the 21 keypoints: all of
  ``mano_joints`` in one launch. For the full forward it also writes a float32 workspace per
  sample: pose features, A (3x4 per joint, entry-major) and the output offset.
* ``_mano_skin_kernel`` (grid: vertex blocks x batch blocks). A (BLOCK_B x BLOCK_V) tile per
  coordinate: v_posed = v_template + betas @ shapedirs + feats @ posedirs (tl.dot, K = 16 and
  K = 135 in BLOCK_K steps), then T_e = A_e @ weights^T (tl.dot, K = 16) for the 12 entries of
  the blended 3x4 transform, applied to v_posed. Keypoints always come from the chain kernel
  (tips computed there too), so they may differ from ``verts[:, tip_ids]`` by float rounding.

Block sizes: GPU defaults below are first guesses, *pending a GPU sweep* (none was available when
this was written). Under ``TRITON_INTERPRET=1`` the cost grows with the number of programs and
loop iterations, so the CPU defaults use large blocks (BLOCK_B=64, BLOCK_V=1024, BLOCK_K=256).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

NUM_JOINTS = 16
NUM_FEATS = 135
FEAT_PAD = 144                    # workspace row: feats [0, 144), A [144, 336), offset [336, 339)
A_OFF = FEAT_PAD
OFFSET_OFF = A_OFF + 12 * NUM_JOINTS
WS_STRIDE = OFFSET_OFF + 16       # 352 floats = 1408 B, 16-float aligned rows

# GPU defaults: untuned first guesses (see module docstring).
# Kernel 1 compile time grows with tile elements per thread (sm_90, 2-core CPU: 32x16 tile and
# 2 warps 21 s, 4 warps 9 s; 16x16 and 4 warps 6.5 s).
_GPU_CHAIN = dict(block_b=32, num_warps=4)
_GPU_SKIN = dict(block_b=32, block_v=64, block_k=32, num_warps=4)
# Interpreter defaults: few programs, few loop iterations.
_CPU_BLOCK_B, _CPU_BLOCK_V, _CPU_BLOCK_K = 64, 1024, 256


# ----------------------------------------------------------------------------------------------
# jit helpers
# ----------------------------------------------------------------------------------------------
@triton.jit
def _rodrigues_minus_eye(x, y, z):
    """Axis-angle (3 x (BLOCK_B,)) -> R - I (9 values, row-major) with R = I + a K + b K^2.

    Same small-angle switch as the reference (Taylor series for t^2 < 1e-6). 1 - cos t is
    computed as 2 sin^2(t/2) (no cancellation in float32), and the diagonal of K^2 as
    -(y^2 + z^2) etc., so R - I keeps full relative precision for tiny angles.
    """
    t2 = x * x + y * y + z * z
    small = t2 < 1e-6
    t2s = tl.where(small, 1.0, t2)
    ts = tl.sqrt(t2s)
    sh = tl.sin(0.5 * ts)
    a = tl.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, tl.sin(ts) / ts)
    b = tl.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, 2.0 * sh * sh / t2s)
    bxy = b * x * y
    bxz = b * x * z
    byz = b * y * z
    ax = a * x
    ay = a * y
    az = a * z
    return (-b * (y * y + z * z), bxy - az, bxz + ay,
            bxy + az, -b * (x * x + z * z), byz - ax,
            bxz - ay, byz + ax, -b * (x * x + y * y))


@triton.jit
def _dot16(a, b):
    """(BLOCK_B, 16) @ (16, 16) in float32. "ieee": exact for the 0/1 gather matrix, and these
    K = 16 products are a small part of the work (switch to tf32x3 only after a GPU sweep)."""
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _gather_compose(P, eye, a0, a1, a2, a3, a4, a5, a6, a7, a8, ax, ay, az,
                    r0, r1, r2, r3, r4, r5, r6, r7, r8, rx, ry, rz):
    """Q o R for 3x4 transforms stored as 12 (BLOCK_B, 16) tiles, where Q = A gathered by P
    (column k <- column j with P[j, k] = 1) and Q = identity where eye = 1."""
    q0 = _dot16(a0, P) + eye
    q1 = _dot16(a1, P)
    q2 = _dot16(a2, P)
    q3 = _dot16(a3, P)
    q4 = _dot16(a4, P) + eye
    q5 = _dot16(a5, P)
    q6 = _dot16(a6, P)
    q7 = _dot16(a7, P)
    q8 = _dot16(a8, P) + eye
    qx = _dot16(ax, P)
    qy = _dot16(ay, P)
    qz = _dot16(az, P)
    return (q0 * r0 + q1 * r3 + q2 * r6, q0 * r1 + q1 * r4 + q2 * r7, q0 * r2 + q1 * r5 + q2 * r8,
            q3 * r0 + q4 * r3 + q5 * r6, q3 * r1 + q4 * r4 + q5 * r7, q3 * r2 + q4 * r5 + q5 * r8,
            q6 * r0 + q7 * r3 + q8 * r6, q6 * r1 + q7 * r4 + q8 * r7, q6 * r2 + q7 * r5 + q8 * r8,
            qx + q0 * rx + q1 * ry + q2 * rz, qy + q3 * rx + q4 * ry + q5 * rz, qz + q6 * rx + q7 * ry + q8 * rz)


@triton.jit
def _tip_blend(c: tl.constexpr, bt, f0, f1, f2, f3, f4, f5, f6, f7, f8, v_template_ptr, shapedirs_t_ptr,
               pd_tile, tid, offs_s, mask_st, mask_kt, mask_t, V3):
    """Coordinate c of the posed tip vertices, (BLOCK_B, 16 tips): steps 1 and 3 for 5 vertices.

    v_template + betas @ shapedirs_t[:, tips] + sum_i F_i @ PD_i, where F_i is the (BLOCK_B, 16
    joints) tile of feature entry i and PD_i[k, t] = posedirs_t[9 (k - 1) + i, 3 tip_t + c].
    """
    v = tl.load(v_template_ptr + tid * 3 + c, mask=mask_t, other=0.0)[None, :]
    v += tl.dot(bt, tl.load(shapedirs_t_ptr + offs_s[:, None] * V3 + tid[None, :] * 3 + c, mask=mask_st, other=0.0),
                input_precision="ieee")
    pd = pd_tile + c
    v += _dot16(f0, tl.load(pd + 0 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f1, tl.load(pd + 1 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f2, tl.load(pd + 2 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f3, tl.load(pd + 3 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f4, tl.load(pd + 4 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f5, tl.load(pd + 5 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f6, tl.load(pd + 6 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f7, tl.load(pd + 7 * V3, mask=mask_kt, other=0.0))
    v += _dot16(f8, tl.load(pd + 8 * V3, mask=mask_kt, other=0.0))
    return v


# ----------------------------------------------------------------------------------------------
# kernel 1: rotations, kinematic chain, keypoints (+ workspace for the skinning kernel)
# ----------------------------------------------------------------------------------------------
# Sizes and strides are plain runtime values: without do_not_specialize Triton compiles one
# variant per combination of "== 1" / "multiple of 16" (B = 1, 16, 37, ...; shared betas' stride 0),
# 36 variants in one test run, each a multi-second compile on the GPU.
@triton.jit(do_not_specialize=["B", "V", "betas_row_stride"])
def _mano_chain_kernel(
    pose_ptr, betas_ptr, trans_ptr,                       # (B, 48), (R, S), (B, 3)
    v_template_ptr, shapedirs_t_ptr, posedirs_t_ptr,      # (V, 3), (S, 3V), (135, 3V)
    j_template_ptr, j_shapedirs_t_ptr, weights_ptr,       # (16, 3), (S, 48), (V, 16)
    tip_ids_ptr,                                          # (5,) int
    kp_ptr, ws_ptr,                                       # (B, 21, 3) out; (B, WS_ROW) f32
    B, V, betas_row_stride,                               # betas_row_stride 0 = shared betas
    S: tl.constexpr, S_PAD: tl.constexpr, TRANS_MODE: tl.constexpr,
    WRITE_WS: tl.constexpr, WS_ROW: tl.constexpr, A_BASE: tl.constexpr, OFF_BASE: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    # Every value is a (BLOCK_B, 16) tile whose column is a joint k (or a fingertip t): one
    # layout for the whole kernel, no per-joint unrolling, few ops (fast to compile and to
    # interpret). Gathering the parent's transform is a tl.dot with a 0/1 matrix.
    pid = tl.program_id(0)
    offs_b = (pid * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    mask_b = offs_b[:, None] < B                                      # (BLOCK_B, 1)
    cols = tl.arange(0, 16)
    row = cols[:, None]
    col = cols[None, :]
    OUT_DTYPE: tl.constexpr = kp_ptr.dtype.element_ty
    V3 = V * 3

    offs_s = tl.arange(0, S_PAD)
    bt = tl.load(betas_ptr + offs_b[:, None] * betas_row_stride + offs_s[None, :],
                 mask=mask_b & (offs_s[None, :] < S), other=0.0).to(tl.float32)

    # 2. rest joints J = j_template + betas @ j_shapedirs_t
    jsd = j_shapedirs_t_ptr + offs_s[:, None] * 48 + 3 * col
    mask_sj = offs_s[:, None] < S
    jx = tl.load(j_template_ptr + 3 * col + 0) + tl.dot(bt, tl.load(jsd + 0, mask=mask_sj, other=0.0), input_precision="ieee")
    jy = tl.load(j_template_ptr + 3 * col + 1) + tl.dot(bt, tl.load(jsd + 1, mask=mask_sj, other=0.0), input_precision="ieee")
    jz = tl.load(j_template_ptr + 3 * col + 2) + tl.dot(bt, tl.load(jsd + 2, mask=mask_sj, other=0.0), input_precision="ieee")

    # rotations: F_i = (R_k - I)[i], row-major 3x3
    pose = pose_ptr + offs_b[:, None] * 48 + 3 * col
    px = tl.load(pose + 0, mask=mask_b, other=0.0).to(tl.float32)
    py = tl.load(pose + 1, mask=mask_b, other=0.0).to(tl.float32)
    pz = tl.load(pose + 2, mask=mask_b, other=0.0).to(tl.float32)
    f0, f1, f2, f3, f4, f5, f6, f7, f8 = _rodrigues_minus_eye(px, py, pz)
    ws_row = ws_ptr + offs_b[:, None] * WS_ROW
    if WRITE_WS:   # pose features: ws[9 (k - 1) + i] = F_i[k] for k >= 1
        feat = ws_row + 9 * (col - 1)
        mask_f = mask_b & (col >= 1)
        tl.store(feat + 0, f0, mask=mask_f)
        tl.store(feat + 1, f1, mask=mask_f)
        tl.store(feat + 2, f2, mask=mask_f)
        tl.store(feat + 3, f3, mask=mask_f)
        tl.store(feat + 4, f4, mask=mask_f)
        tl.store(feat + 5, f5, mask=mask_f)
        tl.store(feat + 6, f6, mask=mask_f)
        tl.store(feat + 7, f7, mask=mask_f)
        tl.store(feat + 8, f8, mask=mask_f)

    # 1.+3. the fingertip vertices (columns t < 5), shaped and pose-blended
    mask_t = cols < 5
    tid = tl.load(tip_ids_ptr + cols, mask=mask_t, other=0).to(tl.int64)
    mask_st = (offs_s[:, None] < S) & mask_t[None, :]
    mask_kt = (row >= 1) & mask_t[None, :]
    pd_tile = posedirs_t_ptr + 9 * (row - 1) * V3 + tid[None, :] * 3
    vpx = _tip_blend(0, bt, f0, f1, f2, f3, f4, f5, f6, f7, f8, v_template_ptr, shapedirs_t_ptr, pd_tile, tid,
                     offs_s, mask_st, mask_kt, mask_t, V3)
    vpy = _tip_blend(1, bt, f0, f1, f2, f3, f4, f5, f6, f7, f8, v_template_ptr, shapedirs_t_ptr, pd_tile, tid,
                     offs_s, mask_st, mask_kt, mask_t, V3)
    vpz = _tip_blend(2, bt, f0, f1, f2, f3, f4, f5, f6, f7, f8, v_template_ptr, shapedirs_t_ptr, pd_tile, tid,
                     offs_s, mask_st, mask_kt, mask_t, V3)

    # 4. kinematic chain. MANO's tree: parent(0) = -1, parent(k) = 0 for the first joint of each
    # finger (k = 1, 4, 7, 10, 13), else k - 1 (depth 3). With P[j, k] = [j == parent(k)],
    # (X @ P)[:, k] = X[:, parent(k)] (0 for the root), an exact gather. Local transforms
    # L_k = [I + F_k | J_k - J_parent(k)]. Pointer doubling: G = L_parent o L, then
    # G = G_grandparent o G covers every root-to-joint path (<= 4 nodes) in two rounds.
    level = (cols + 2) % 3 + 1                                        # 1, 2, 3 within a finger
    parent = tl.where(cols == 0, -1, tl.where(level == 1, 0, cols - 1))
    grand = tl.where((cols == 0) | (level == 1), -1, tl.where(level == 2, 0, cols - 2))
    P = (row == parent[None, :]).to(tl.float32)
    P2 = (row == grand[None, :]).to(tl.float32)
    eye1 = (parent[None, :] < 0).to(tl.float32)    # missing ancestor = identity
    eye2 = (grand[None, :] < 0).to(tl.float32)
    lx = jx - _dot16(jx, P)
    ly = jy - _dot16(jy, P)
    lz = jz - _dot16(jz, P)
    l0 = f0 + 1.0
    l4 = f4 + 1.0
    l8 = f8 + 1.0
    g0, g1, g2, g3, g4, g5, g6, g7, g8, gx, gy, gz = _gather_compose(
        P, eye1, l0, f1, f2, f3, l4, f5, f6, f7, l8, lx, ly, lz, l0, f1, f2, f3, l4, f5, f6, f7, l8, lx, ly, lz)
    g0, g1, g2, g3, g4, g5, g6, g7, g8, gx, gy, gz = _gather_compose(
        P2, eye2, g0, g1, g2, g3, g4, g5, g6, g7, g8, gx, gy, gz, g0, g1, g2, g3, g4, g5, g6, g7, g8, gx, gy, gz)
    # skinning transforms A_k = [G_R | G_t - G_R J_k]
    ax = gx - (g0 * jx + g1 * jy + g2 * jz)
    ay = gy - (g3 * jx + g4 * jy + g5 * jz)
    az = gz - (g6 * jx + g7 * jy + g8 * jz)

    # output offset: trans - J_0 (mode 0: trans is the posed wrist) or trans (mode 1)
    tr = trans_ptr + offs_b[:, None] * 3
    ox = tl.load(tr + 0, mask=mask_b, other=0.0).to(tl.float32)
    oy = tl.load(tr + 1, mask=mask_b, other=0.0).to(tl.float32)
    oz = tl.load(tr + 2, mask=mask_b, other=0.0).to(tl.float32)
    if TRANS_MODE == 0:
        is_root = (col == 0).to(tl.float32)
        ox -= tl.sum(jx * is_root, axis=1)[:, None]
        oy -= tl.sum(jy * is_root, axis=1)[:, None]
        oz -= tl.sum(jz * is_root, axis=1)[:, None]

    # keypoints 0..20 (Being-H0 order). Joint k >= 1 is joint (k - 1) % 3 of native finger
    # (k - 1) // 3 (index, middle, pinky, ring, thumb) = keypoint finger 1, 2, 4, 3, 0;
    # slot = 1 + 4 * finger + joint. Tip t (thumb..pinky) goes to slot 4 + 4 t.
    fn = (cols + 2) // 3 - 1
    kfinger = tl.where(fn == 4, 0, tl.where(fn < 2, fn + 1, 6 - fn))
    slot = tl.where(cols == 0, 0, 4 * kfinger + level)
    kp_row = kp_ptr + offs_b[:, None] * 63
    kp = kp_row + 3 * slot[None, :]
    tl.store(kp + 0, (gx + ox).to(OUT_DTYPE), mask=mask_b)
    tl.store(kp + 1, (gy + oy).to(OUT_DTYPE), mask=mask_b)
    tl.store(kp + 2, (gz + oz).to(OUT_DTYPE), mask=mask_b)

    # 5. tip skinning: T_e = A_e @ W (W[k, t] = weights[tip_t, k]), tip = T[:, :3] v_posed + T[:, 3]
    W = tl.load(weights_ptr + tid[None, :] * 16 + row, mask=mask_t[None, :], other=0.0)
    tx = _dot16(g0, W) * vpx + _dot16(g1, W) * vpy + _dot16(g2, W) * vpz + _dot16(ax, W) + ox
    ty = _dot16(g3, W) * vpx + _dot16(g4, W) * vpy + _dot16(g5, W) * vpz + _dot16(ay, W) + oy
    tz = _dot16(g6, W) * vpx + _dot16(g7, W) * vpy + _dot16(g8, W) * vpz + _dot16(az, W) + oz
    kp = kp_row + 3 * (4 + 4 * col)
    mask_tips = mask_b & (col < 5)
    tl.store(kp + 0, tx.to(OUT_DTYPE), mask=mask_tips)
    tl.store(kp + 1, ty.to(OUT_DTYPE), mask=mask_tips)
    tl.store(kp + 2, tz.to(OUT_DTYPE), mask=mask_tips)

    if WRITE_WS:   # A, entry-major (ws[A_BASE + 16 e + k], e = 4 row + col of the 3x4), offset
        a = ws_row + A_BASE + col
        tl.store(a + 16 * 0, g0, mask=mask_b)
        tl.store(a + 16 * 1, g1, mask=mask_b)
        tl.store(a + 16 * 2, g2, mask=mask_b)
        tl.store(a + 16 * 3, ax, mask=mask_b)
        tl.store(a + 16 * 4, g3, mask=mask_b)
        tl.store(a + 16 * 5, g4, mask=mask_b)
        tl.store(a + 16 * 6, g5, mask=mask_b)
        tl.store(a + 16 * 7, ay, mask=mask_b)
        tl.store(a + 16 * 8, g6, mask=mask_b)
        tl.store(a + 16 * 9, g7, mask=mask_b)
        tl.store(a + 16 * 10, g8, mask=mask_b)
        tl.store(a + 16 * 11, az, mask=mask_b)
        tl.store(ws_row + OFF_BASE + 0, ox, mask=mask_b)
        tl.store(ws_row + OFF_BASE + 1, oy, mask=mask_b)
        tl.store(ws_row + OFF_BASE + 2, oz, mask=mask_b)


# ----------------------------------------------------------------------------------------------
# kernel 2: blend shapes and skinning of all vertices
# ----------------------------------------------------------------------------------------------
@triton.jit(do_not_specialize=["B", "V", "betas_row_stride"])
def _mano_skin_kernel(
    ws_ptr, betas_ptr,                                    # (B, WS_STRIDE) f32, (R, S)
    v_template_ptr, shapedirs_t_ptr, posedirs_t_ptr,      # (V, 3), (S, 3V), (135, 3V)
    weights_ptr, verts_ptr,                               # (V, 16), (B, V, 3) out
    B, V, betas_row_stride,
    S: tl.constexpr, S_PAD: tl.constexpr, NUM_FEATS: tl.constexpr,
    WS_ROW: tl.constexpr, A_BASE: tl.constexpr, OFF_BASE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_v = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs_b = (pid_b * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    offs_v = (pid_v * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    mask_b = offs_b < B
    mask_v = offs_v < V
    V3 = V * 3
    ws_row_ptr = ws_ptr + offs_b * WS_ROW

    # 1. shape blend: v_template + betas @ shapedirs (K = S_PAD >= 16)
    offs_s = tl.arange(0, S_PAD)
    mask_s = offs_s < S
    bt = tl.load(betas_ptr + offs_b[:, None] * betas_row_stride + offs_s[None, :],
                 mask=mask_b[:, None] & mask_s[None, :], other=0.0).to(tl.float32)
    sd_ptr = shapedirs_t_ptr + offs_s[:, None] * V3 + offs_v[None, :] * 3
    mask_sv = mask_s[:, None] & mask_v[None, :]
    vx = tl.dot(bt, tl.load(sd_ptr + 0, mask=mask_sv, other=0.0), input_precision=DOT_PRECISION)
    vy = tl.dot(bt, tl.load(sd_ptr + 1, mask=mask_sv, other=0.0), input_precision=DOT_PRECISION)
    vz = tl.dot(bt, tl.load(sd_ptr + 2, mask=mask_sv, other=0.0), input_precision=DOT_PRECISION)
    vx += tl.load(v_template_ptr + offs_v * 3 + 0, mask=mask_v, other=0.0)[None, :]
    vy += tl.load(v_template_ptr + offs_v * 3 + 1, mask=mask_v, other=0.0)[None, :]
    vz += tl.load(v_template_ptr + offs_v * 3 + 2, mask=mask_v, other=0.0)[None, :]

    # 3. pose blend: feats (BLOCK_B, 135) @ posedirs_t[:, 3v + c] (K = 135 in BLOCK_K steps)
    offs_k = tl.arange(0, BLOCK_K)
    for k0 in range(0, NUM_FEATS, BLOCK_K):
        kk = k0 + offs_k
        mask_k = kk < NUM_FEATS
        feats = tl.load(ws_row_ptr[:, None] + kk[None, :], mask=mask_b[:, None] & mask_k[None, :], other=0.0)
        pd_ptr = posedirs_t_ptr + kk[:, None] * V3 + offs_v[None, :] * 3
        mask_kv = mask_k[:, None] & mask_v[None, :]
        vx = tl.dot(feats, tl.load(pd_ptr + 0, mask=mask_kv, other=0.0), vx, input_precision=DOT_PRECISION)
        vy = tl.dot(feats, tl.load(pd_ptr + 1, mask=mask_kv, other=0.0), vy, input_precision=DOT_PRECISION)
        vz = tl.dot(feats, tl.load(pd_ptr + 2, mask=mask_kv, other=0.0), vz, input_precision=DOT_PRECISION)

    # 5. skinning: T_e = A_e (BLOCK_B, 16) @ weights^T (16, BLOCK_V), out_c = T_c:3 v + T_c3 + off_c
    offs_j = tl.arange(0, 16)
    wt = tl.load(weights_ptr + offs_v[None, :] * 16 + offs_j[:, None], mask=mask_v[None, :], other=0.0)
    a_ptr = ws_row_ptr[:, None] + A_BASE + offs_j[None, :]
    mask_b2 = mask_b[:, None]
    out_ptr = verts_ptr + offs_b[:, None] * V3 + offs_v[None, :] * 3
    mask_out = mask_b2 & mask_v[None, :]
    for c in tl.static_range(3):
        e0 = 4 * c
        out = tl.dot(tl.load(a_ptr + 16 * (e0 + 3), mask=mask_b2, other=0.0), wt, input_precision=DOT_PRECISION)
        out += vx * tl.dot(tl.load(a_ptr + 16 * e0, mask=mask_b2, other=0.0), wt, input_precision=DOT_PRECISION)
        out += vy * tl.dot(tl.load(a_ptr + 16 * (e0 + 1), mask=mask_b2, other=0.0), wt, input_precision=DOT_PRECISION)
        out += vz * tl.dot(tl.load(a_ptr + 16 * (e0 + 2), mask=mask_b2, other=0.0), wt, input_precision=DOT_PRECISION)
        out += tl.load(ws_row_ptr + OFF_BASE + c, mask=mask_b, other=0.0)[:, None]
        tl.store(out_ptr + c, out.to(verts_ptr.dtype.element_ty), mask=mask_out)


# ----------------------------------------------------------------------------------------------
# host wrapper
# ----------------------------------------------------------------------------------------------
_SAMPLE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_block(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or value < minimum or value & (value - 1):
        raise ValueError(f"mano_lbs_triton: {name}={value!r} must be a power of two >= {minimum}")
    return value


def _validate(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t,
              weights, tip_ids, trans_mode):
    named = dict(betas=betas, pose=pose, trans=trans, v_template=v_template, shapedirs_t=shapedirs_t,
                 posedirs_t=posedirs_t, j_template=j_template, j_shapedirs_t=j_shapedirs_t,
                 weights=weights, tip_ids=tip_ids)
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"mano_lbs_triton: {name} must be a torch.Tensor, got {type(t).__name__}")
    dev = pose.device
    for name, t in named.items():
        if t.device != dev:
            raise ValueError(f"mano_lbs_triton: {name} is on {t.device} but pose is on {dev}; move all inputs to one device")
    if dev.type != "cuda" and dev.type != "cpu":
        raise ValueError(f"mano_lbs_triton: unsupported device {dev}; use CUDA tensors (or CPU under TRITON_INTERPRET=1)")
    if pose.dtype not in _SAMPLE_DTYPES:
        raise TypeError(f"mano_lbs_triton: pose dtype {pose.dtype} is not supported; use float32, float16 or "
                        "bfloat16 (float64 runs on the reference or C++/CUDA backends)")
    for name in ("betas", "trans"):
        if named[name].dtype != pose.dtype:
            raise TypeError(f"mano_lbs_triton: {name} has dtype {named[name].dtype} but pose has {pose.dtype}; "
                            "per-sample tensors must share one dtype")
    for name in ("v_template", "shapedirs_t", "posedirs_t", "j_template", "j_shapedirs_t", "weights"):
        t = named[name]
        if t.dtype != torch.float32:
            raise TypeError(f"mano_lbs_triton: constant {name} must be float32, got {t.dtype}")
        if not t.is_contiguous():
            raise ValueError(f"mano_lbs_triton: constant {name} must be C-contiguous (pack it once with .contiguous())")
    if tip_ids.dtype not in (torch.int32, torch.int64) or tuple(tip_ids.shape) != (5,) or not tip_ids.is_contiguous():
        raise TypeError(f"mano_lbs_triton: tip_ids must be a contiguous (5,) int32 tensor, got {tip_ids.dtype} "
                        f"{tuple(tip_ids.shape)}")
    if pose.dim() != 2 or pose.shape[1] != 48:
        raise ValueError(f"mano_lbs_triton: pose must be (B, 48), got {tuple(pose.shape)}")
    B = pose.shape[0]
    if tuple(trans.shape) != (B, 3):
        raise ValueError(f"mano_lbs_triton: trans must be ({B}, 3), got {tuple(trans.shape)}")
    if betas.dim() != 2 or betas.shape[0] not in (1, B):
        raise ValueError(f"mano_lbs_triton: betas must be (1, S) or ({B}, S), got {tuple(betas.shape)}")
    S = betas.shape[1]
    if v_template.dim() != 2 or v_template.shape[1] != 3 or v_template.shape[0] < 1:
        raise ValueError(f"mano_lbs_triton: v_template must be (V, 3), got {tuple(v_template.shape)}")
    V = v_template.shape[0]
    expected = dict(shapedirs_t=(S, 3 * V), posedirs_t=(NUM_FEATS, 3 * V), j_template=(NUM_JOINTS, 3),
                    j_shapedirs_t=(S, 3 * NUM_JOINTS), weights=(V, NUM_JOINTS))
    for name, shape in expected.items():
        if tuple(named[name].shape) != shape:
            raise ValueError(f"mano_lbs_triton: {name} must be {shape} (V={V}, S={S} from v_template and betas), "
                             f"got {tuple(named[name].shape)}")
    if trans_mode not in (0, 1):
        raise ValueError(f"mano_lbs_triton: trans_mode must be 0 (Being-H0 wrist) or 1 (smplx), got {trans_mode!r}")
    if dev.type == "cpu" and B > 0 and (int(tip_ids.min()) < 0 or int(tip_ids.max()) >= V):
        # (not checked on CUDA: it would synchronise; the C++ ABI checks there)
        raise ValueError(f"mano_lbs_triton: tip_ids {tip_ids.tolist()} must lie in [0, {V})")
    return B, S, V


def mano_lbs_triton(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t,
                    weights, tip_ids, trans_mode: int, with_vertices: bool, *, block_b: int | None = None,
                    block_v: int | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """MANO forward (Triton): same inputs as the C++ ABI (``csrc/README.md``), as torch tensors.

    Args:
        betas (R, S) with R = 1 (shared) or B; pose (B, 48); trans (B, 3): per-sample tensors of
            one dtype, float32/float16/bfloat16.
        v_template (V, 3), shapedirs_t (S, 3V), posedirs_t (135, 3V), j_template (16, 3),
            j_shapedirs_t (S, 48), weights (V, 16): float32 C-contiguous constants.
        tip_ids (5,) int32: fingertip rows within the V given (thumb, index, middle, ring, pinky).
        trans_mode: 0 = Being-H0 (out = mesh - J_0 + trans), 1 = smplx (out = mesh + trans).
        with_vertices: False = ``mano_joints`` (one launch; pass the 5 tip rows, V = 5, or the
            full constants); True = ``mano_forward`` (two launches).
        block_b, block_v: override the batch / vertex block sizes (powers of two; block_b >= 16,
            block_v >= 16), e.g. to keep interpreter tests fast.

    Returns:
        (verts (B, V, 3) or None, keypoints (B, 21, 3) in Being-H0 order), dtype of ``pose``.
        Accumulation is float32.
    """
    B, S, V = _validate(betas, pose, trans, v_template, shapedirs_t, posedirs_t, j_template,
                        j_shapedirs_t, weights, tip_ids, trans_mode)
    dev, dtype = pose.device, pose.dtype
    keypoints = torch.empty(B, 21, 3, device=dev, dtype=dtype)
    verts = torch.empty(B, V, 3, device=dev, dtype=dtype) if with_vertices else None
    if B == 0:
        return verts, keypoints
    betas, pose, trans = betas.contiguous(), pose.contiguous(), trans.contiguous()
    betas_row_stride = 0 if betas.shape[0] == 1 else S
    s_pad = max(16, triton.next_power_of_2(S))          # >= 16: tl.dot's minimum K in the skinning kernel
    interpret = dev.type == "cpu"
    chain_b = _check_block("block_b", block_b if block_b is not None else
                           (_CPU_BLOCK_B if interpret else _GPU_CHAIN["block_b"]), 16)   # tl.dot: M >= 16
    ws = torch.empty(B, WS_STRIDE, device=dev, dtype=torch.float32) if with_vertices else keypoints
    consts = (v_template, shapedirs_t, posedirs_t, j_template, j_shapedirs_t, weights, tip_ids)
    _mano_chain_kernel[(triton.cdiv(B, chain_b),)](
        pose, betas, trans, *consts, keypoints, ws, B, V, betas_row_stride,
        S=S, S_PAD=s_pad, TRANS_MODE=int(trans_mode), WRITE_WS=bool(with_vertices), WS_ROW=WS_STRIDE,
        A_BASE=A_OFF, OFF_BASE=OFFSET_OFF, BLOCK_B=chain_b, num_warps=_GPU_CHAIN["num_warps"],
    )
    if not with_vertices:
        return None, keypoints

    skin_b = _check_block("block_b", block_b if block_b is not None else
                          (_CPU_BLOCK_B if interpret else _GPU_SKIN["block_b"]), 16)
    skin_v = _check_block("block_v", block_v if block_v is not None else
                          (_CPU_BLOCK_V if interpret else _GPU_SKIN["block_v"]), 16)
    block_k = _CPU_BLOCK_K if interpret else _GPU_SKIN["block_k"]
    # float32 outputs: tf32x3 keeps ~fp32 accuracy on tensor cores (plain tf32 errs by ~1e-4 m);
    # reduced-precision outputs cannot see the difference.
    precision = "tf32x3" if dtype == torch.float32 else "tf32"
    _mano_skin_kernel[(triton.cdiv(V, skin_v), triton.cdiv(B, skin_b))](
        ws, betas, v_template, shapedirs_t, posedirs_t, weights, verts, B, V, betas_row_stride,
        S=S, S_PAD=s_pad, NUM_FEATS=NUM_FEATS, WS_ROW=WS_STRIDE, A_BASE=A_OFF, OFF_BASE=OFFSET_OFF,
        DOT_PRECISION=precision, BLOCK_B=skin_b, BLOCK_V=skin_v, BLOCK_K=block_k,
        num_warps=_GPU_SKIN["num_warps"],
    )
    return verts, keypoints
