// CUDA MANO forward and backward. Per-sample math: mano_math.h (the same functions the CPU tests
// check). Per-sample tensors may be float32/float64/float16/bfloat16 (In); arithmetic and the
// model constants are float32 (T), or float64 for float64 inputs.
//
// Forward with vertices (B x V outputs, V = 778):
//   sample_kernel  one thread per sample: Rodrigues, rest joints, chain -> A (B,16,12), pose
//                  features (B,135), offset (B,3) in scratch, and the 16 joint keypoints.
//   vertex_kernel  tile of TS samples x VT vertices per block: the pose blend is the GEMM
//                  (B x 135) @ (135 x 3V) (41 GFLOP at B = 65,536, the dominant cost), done in
//                  fp32 FMAs with the features of the TS samples in shared memory (one broadcast
//                  load feeds 3 FMAs, one posedirs load feeds TS FMAs), then skinning, then a
//                  coalesced store of the tile through shared memory (the output is 612 MB at
//                  B = 65,536: write bandwidth matters as much as the FLOPs).
// Keypoints only (verts == nullptr, mano_joints with V = 5): joints_kernel, one thread per
//   sample, everything in registers, the tip-vertex constants staged in shared memory and the
//   per-sample rows staged through shared memory so global loads and stores are coalesced
//   (61 values in, 63 out per sample).
// Backward: sample_kernel (recompute A, features), vertex_backward_kernel (one block per sample:
//   per-vertex skinning backward into shared memory, then block reductions for dA (16x12) and
//   the 135 + S dot products with posedirs/shapedirs), sample_backward_kernel (one thread per
//   sample: chain and Rodrigues backward), reduce_betas_kernel (fixed-order batch sum of the
//   per-sample grad_betas when betas are shared: deterministic, no atomics).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "mano/mano.h"
#include "mano/mano_math.h"

namespace bh0 {
namespace mano {
namespace {

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ double ld(const double* p) { return *p; }
__device__ __forceinline__ float ld(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(double* p, double v) { *p = v; }
__device__ __forceinline__ void st(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void st(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <class In, class T>
struct Params {
  const In* betas;
  const In* pose;
  const In* trans;
  const T *vt, *sd, *pd, *jt, *jsd, *w;
  const int32_t* tips;
  int64_t rows, B, V, S;
  int mode;
};

template <class In, class T>
__device__ __forceinline__ const In* beta_row(const Params<In, T>& P, int64_t b) {
  return P.betas + (P.rows == 1 ? 0 : b * P.S);
}

// J = j_template + sum_s beta_s j_shapedirs_t[s] with betas read in their storage type.
template <class In, class T>
__device__ void rest_joints_dev(const Params<In, T>& P, int64_t b, T* J) {
  const In* beta = beta_row(P, b);
#pragma unroll
  for (int m = 0; m < 48; ++m) J[m] = P.jt[m];
  for (int64_t s = 0; s < P.S; ++s) {
    const T bs = ld(beta + s);
#pragma unroll
    for (int m = 0; m < 48; ++m) J[m] += bs * P.jsd[s * 48 + m];
  }
}

// Shaped rest vertex v: v_template[v] + sum_s beta_s shapedirs_t[s, 3v:3v+3].
template <class In, class T>
__device__ __forceinline__ void shaped_dev(const Params<In, T>& P, const In* beta, int64_t v, T* vs) {
  const int64_t V3 = 3 * P.V;
  T x = P.vt[3 * v], y = P.vt[3 * v + 1], z = P.vt[3 * v + 2];
  for (int64_t s = 0; s < P.S; ++s) {
    const T bs = ld(beta + s);
    const T* row = P.sd + s * V3 + 3 * v;
    x += bs * __ldg(row), y += bs * __ldg(row + 1), z += bs * __ldg(row + 2);
  }
  vs[0] = x, vs[1] = y, vs[2] = z;
}

// Per-sample rotations, rest joints and chain (shared by forward and backward).
template <class In, class T>
__device__ void sample_state(const Params<In, T>& P, int64_t b, T* pose, T* RmI, T* J, T* GR, T* Jp, T* A, T* off) {
#pragma unroll
  for (int j = 0; j < 48; ++j) pose[j] = ld(P.pose + b * 48 + j);
  pose_rotations(pose, RmI);
  rest_joints_dev(P, b, J);
  chain_forward(RmI, J, GR, Jp, A);
#pragma unroll
  for (int c = 0; c < 3; ++c) off[c] = ld(P.trans + b * 3 + c) - (P.mode == 0 ? J[c] : T(0));
}

template <class In, class T>
__global__ void __launch_bounds__(128) sample_kernel(Params<In, T> P, T* __restrict__ A_out, T* __restrict__ feat_out,
                                                     T* __restrict__ off_out, In* __restrict__ kp_out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.B) return;
  T pose[48], RmI[144], J[48], GR[144], Jp[48], A[192], off[3];
  sample_state(P, b, pose, RmI, J, GR, Jp, A, off);
  for (int i = 0; i < 192; ++i) A_out[b * 192 + i] = A[i];
  for (int p = 0; p < kPoseFeats; ++p) feat_out[b * kPoseFeats + p] = RmI[9 + p];
  for (int c = 0; c < 3; ++c) off_out[b * 3 + c] = off[c];
  if (kp_out != nullptr) {
#pragma unroll
    for (int q = 0; q < kKeypoints; ++q) {
      const int src = keypoint_source(q);
      if (src < 16)
        for (int c = 0; c < 3; ++c) st(kp_out + b * 63 + 3 * q + c, Jp[3 * src + c] + off[c]);
    }
  }
}

constexpr int kMaxVT = 128;  // vertices per vertex_kernel block (= threads)

// Grid: x = sample tiles of TS, y = vertex tiles of vt (a multiple of 32, <= kMaxVT).
template <class In, class T, int TS>
__global__ void __launch_bounds__(kMaxVT) vertex_kernel(Params<In, T> P, const T* __restrict__ A_g,
                                                        const T* __restrict__ feat_g, const T* __restrict__ off_g,
                                                        int vt, In* __restrict__ verts, In* __restrict__ kp) {
  __shared__ T featT[kPoseFeats][TS];
  __shared__ T As[TS][192];
  __shared__ T offs[TS][3];
  __shared__ T outs[TS][kMaxVT * 3];
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * TS;
  const int64_t v0 = static_cast<int64_t>(blockIdx.y) * vt;
  const int tid = threadIdx.x;
  const int nb = static_cast<int>(min(static_cast<int64_t>(TS), P.B - b0));
  const int nv = static_cast<int>(min(static_cast<int64_t>(vt), P.V - v0));
  const int64_t V3 = 3 * P.V;
  for (int idx = tid; idx < TS * kPoseFeats; idx += blockDim.x) {
    const int i = idx / kPoseFeats, p = idx % kPoseFeats;
    featT[p][i] = i < nb ? feat_g[(b0 + i) * kPoseFeats + p] : T(0);
  }
  for (int idx = tid; idx < TS * 192; idx += blockDim.x) {
    const int i = idx / 192, c = idx % 192;
    As[i][c] = i < nb ? A_g[(b0 + i) * 192 + c] : T(0);
  }
  for (int idx = tid; idx < TS * 3; idx += blockDim.x) {
    const int i = idx / 3, c = idx % 3;
    offs[i][c] = i < nb ? off_g[(b0 + i) * 3 + c] : T(0);
  }
  __syncthreads();
  if (tid < nv) {
    const int64_t v = v0 + tid;
    T acc[TS][3];
    if (P.rows == 1) {  // shared betas: one shaped vertex for the whole tile
      T vs[3];
      shaped_dev(P, P.betas, v, vs);
#pragma unroll
      for (int i = 0; i < TS; ++i) acc[i][0] = vs[0], acc[i][1] = vs[1], acc[i][2] = vs[2];
    } else {
#pragma unroll
      for (int i = 0; i < TS; ++i) {
        T vs[3] = {T(0), T(0), T(0)};
        if (i < nb) shaped_dev(P, P.betas + (b0 + i) * P.S, v, vs);
        acc[i][0] = vs[0], acc[i][1] = vs[1], acc[i][2] = vs[2];
      }
    }
    const T* col = P.pd + 3 * v;
#pragma unroll 3
    for (int p = 0; p < kPoseFeats; ++p) {
      const T x = __ldg(col + p * V3), y = __ldg(col + p * V3 + 1), z = __ldg(col + p * V3 + 2);
#pragma unroll
      for (int i = 0; i < TS; ++i) {
        const T f = featT[p][i];
        acc[i][0] += f * x;
        acc[i][1] += f * y;
        acc[i][2] += f * z;
      }
    }
    T w[16];
#pragma unroll
    for (int k = 0; k < 16; ++k) w[k] = __ldg(P.w + v * 16 + k);
#pragma unroll
    for (int i = 0; i < TS; ++i) {
      T Tm[12], o[3];
      const T vp[3] = {acc[i][0], acc[i][1], acc[i][2]};
      skin_matrix(w, &As[i][0], Tm);
      skin_apply(Tm, vp, &offs[i][0], o);
      outs[i][3 * tid] = o[0], outs[i][3 * tid + 1] = o[1], outs[i][3 * tid + 2] = o[2];
    }
  }
  __syncthreads();
  // Each sample's tile is 3 nv contiguous outputs: consecutive threads store consecutive values.
  const int row = 3 * nv;
  for (int idx = tid; idx < nb * row; idx += blockDim.x) {
    const int i = idx / row, j = idx % row;
    st(verts + (b0 + i) * V3 + 3 * v0 + j, outs[i][j]);
  }
  if (tid < nv) {
    const int64_t v = v0 + tid;
    for (int t = 0; t < kTips; ++t)
      if (P.tips[t] == v)
        for (int i = 0; i < nb; ++i)
          for (int c = 0; c < 3; ++c) st(kp + (b0 + i) * 63 + 3 * (4 * t + 4) + c, outs[i][3 * tid + c]);
  }
}

// Shared-memory layout of joints_kernel (in units of T, each part 16-byte aligned).
struct JointsSmem {
  size_t pdt, wt, sdt, vtt, jt, jsd, in_pose, in_trans, out, total;  // byte offsets
  JointsSmem(int64_t S, int threads, size_t t_size, size_t in_size) {
    size_t o = 0;
    auto take = [&](size_t bytes) { size_t at = o; o = (o + bytes + 15) / 16 * 16; return at; };
    pdt = take(kPoseFeats * 16 * t_size);
    wt = take(16 * 8 * t_size);
    sdt = take(S * 16 * t_size);
    vtt = take(16 * t_size);
    jt = take(48 * t_size);
    jsd = take(S * 48 * t_size);
    in_pose = take(threads * 48 * in_size);
    in_trans = take(threads * 3 * in_size);
    out = take(threads * 63 * t_size);
    total = o;
  }
};

// Keypoints only. Tip j = 3 t + c of the 5 tips is column j of the staged (.., 16) constants.
template <class In, class T>
__global__ void joints_kernel(Params<In, T> P, JointsSmem L, In* __restrict__ kp) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* pdt = reinterpret_cast<T*>(smem + L.pdt);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  T* sdt = reinterpret_cast<T*>(smem + L.sdt);
  T* vtt = reinterpret_cast<T*>(smem + L.vtt);
  T* jts = reinterpret_cast<T*>(smem + L.jt);
  T* jsds = reinterpret_cast<T*>(smem + L.jsd);
  In* pose_s = reinterpret_cast<In*>(smem + L.in_pose);
  In* trans_s = reinterpret_cast<In*>(smem + L.in_trans);
  T* out_s = reinterpret_cast<T*>(smem + L.out);
  const int tid = threadIdx.x, nt = blockDim.x;
  const int64_t V3 = 3 * P.V;
  for (int idx = tid; idx < kPoseFeats * 16; idx += nt) {
    const int p = idx / 16, j = idx % 16;
    pdt[idx] = j < 15 ? P.pd[p * V3 + 3 * P.tips[j / 3] + j % 3] : T(0);
  }
  for (int idx = tid; idx < 16 * 8; idx += nt) {
    const int k = idx / 8, t = idx % 8;
    wt[idx] = t < kTips ? P.w[P.tips[t] * 16 + k] : T(0);
  }
  for (int64_t idx = tid; idx < P.S * 16; idx += nt) {
    const int64_t s = idx / 16;
    const int j = static_cast<int>(idx % 16);
    sdt[idx] = j < 15 ? P.sd[s * V3 + 3 * P.tips[j / 3] + j % 3] : T(0);
  }
  for (int j = tid; j < 16; j += nt) vtt[j] = j < 15 ? P.vt[3 * P.tips[j / 3] + j % 3] : T(0);
  for (int m = tid; m < 48; m += nt) jts[m] = P.jt[m];
  for (int64_t idx = tid; idx < P.S * 48; idx += nt) jsds[idx] = P.jsd[idx];
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * nt;
  const int nb = static_cast<int>(min(static_cast<int64_t>(nt), P.B - b0));
  for (int idx = tid; idx < nb * 48; idx += nt) pose_s[idx] = P.pose[b0 * 48 + idx];
  for (int idx = tid; idx < nb * 3; idx += nt) trans_s[idx] = P.trans[b0 * 3 + idx];
  __syncthreads();
  if (tid < nb) {
    const In* beta = beta_row(P, b0 + tid);
    T* out = out_s + tid * 63;
    T vp[15];
#pragma unroll
    for (int j = 0; j < 15; ++j) vp[j] = vtt[j];
    for (int64_t s = 0; s < P.S; ++s) {
      const T bs = ld(beta + s);
#pragma unroll
      for (int j = 0; j < 15; ++j) vp[j] += bs * sdt[s * 16 + j];
    }
    T Tt[kTips][12];
#pragma unroll
    for (int t = 0; t < kTips; ++t)
#pragma unroll
      for (int c = 0; c < 12; ++c) Tt[t][c] = T(0);
    T G0[9], Jp0[3], J0[3], Gc[9], Jpc[3], Jc[3], off[3];
#pragma unroll
    for (int k = 0; k < kJoints; ++k) {
      T Jk[3] = {jts[3 * k], jts[3 * k + 1], jts[3 * k + 2]};
      for (int64_t s = 0; s < P.S; ++s) {
        const T bs = ld(beta + s);
        Jk[0] += bs * jsds[s * 48 + 3 * k], Jk[1] += bs * jsds[s * 48 + 3 * k + 1];
        Jk[2] += bs * jsds[s * 48 + 3 * k + 2];
      }
      const T r[3] = {ld(pose_s + tid * 48 + 3 * k), ld(pose_s + tid * 48 + 3 * k + 1), ld(pose_s + tid * 48 + 3 * k + 2)};
      T RmI[9], G[9], Jpk[3], Ak[12];
      rodrigues_minus_eye(r, RmI);
      if (k >= 1) {  // pose blend of the 5 tips: features 9 (k - 1) .. 9 (k - 1) + 8
#pragma unroll
        for (int m = 0; m < 9; ++m) {
          const T* row = pdt + (9 * (k - 1) + m) * 16;
#pragma unroll
          for (int j = 0; j < 15; ++j) vp[j] += RmI[m] * row[j];
        }
      }
      const int p = parent(k);
      if (p < 0) {
        chain_link<T>(nullptr, nullptr, nullptr, Jk, RmI, G, Jpk, Ak);
#pragma unroll
        for (int c = 0; c < 3; ++c) {
          J0[c] = Jk[c], Jp0[c] = Jpk[c];
          off[c] = ld(trans_s + tid * 3 + c) - (P.mode == 0 ? Jk[c] : T(0));
        }
#pragma unroll
        for (int i = 0; i < 9; ++i) G0[i] = G[i];
      } else {
        // Children of the wrist start a finger; the others continue the previous joint's finger.
        const T* Gp = p == 0 ? G0 : Gc;
        const T* Jpp = p == 0 ? Jp0 : Jpc;
        const T* Jpar = p == 0 ? J0 : Jc;
        chain_link(Gp, Jpp, Jpar, Jk, RmI, G, Jpk, Ak);
      }
#pragma unroll
      for (int i = 0; i < 9; ++i) Gc[i] = G[i];
#pragma unroll
      for (int c = 0; c < 3; ++c) Jpc[c] = Jpk[c], Jc[c] = Jk[c];
#pragma unroll
      for (int t = 0; t < kTips; ++t) {
        const T wk = wt[k * 8 + t];
#pragma unroll
        for (int c = 0; c < 12; ++c) Tt[t][c] += wk * Ak[c];
      }
#pragma unroll
      for (int q = 0; q < kKeypoints; ++q)
        if (keypoint_source(q) == k)
#pragma unroll
          for (int c = 0; c < 3; ++c) out[3 * q + c] = Jpk[c] + off[c];
    }
#pragma unroll
    for (int t = 0; t < kTips; ++t) skin_apply(Tt[t], vp + 3 * t, off, out + 3 * (4 * t + 4));
  }
  __syncthreads();
  for (int idx = tid; idx < nb * 63; idx += nt) st(kp + b0 * 63 + idx, out_s[idx]);
}

// One block per sample. "Virtual vertices" i < nvv: all V vertices when grad_verts is given,
// else only the 5 tips (vertex tips[i], each with its own keypoint gradient; this is exact even
// with repeated tip ids because each (tip, gradient) pair contributes linearly).
// Dynamic shared memory (T): As 192 | feats 135 | betas S | gtips 16 | red 3*32 | dvp 3 nvv | O 12 nvv.
template <class In, class T>
__global__ void __launch_bounds__(256) vertex_backward_kernel(Params<In, T> P, const In* __restrict__ gverts,
                                                              const In* __restrict__ gkps, const T* __restrict__ A_g,
                                                              const T* __restrict__ feat_g, T* __restrict__ dA_g,
                                                              T* __restrict__ dfeat_g, T* __restrict__ dbv_g,
                                                              T* __restrict__ gsum_g) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  const bool full = gverts != nullptr;
  const int64_t b = blockIdx.x;
  const int64_t V3 = 3 * P.V, S = P.S;
  const int nvv = full ? static_cast<int>(P.V) : kTips;
  T* As = sm;
  T* feats = As + 192;
  T* betas = feats + kPoseFeats;
  T* gtips = betas + S;
  T* red = gtips + 16;
  T* dvp = red + 3 * 32;
  T* O = dvp + 3 * nvv;
  const int tid = threadIdx.x, nt = blockDim.x;
  for (int i = tid; i < 192; i += nt) As[i] = A_g[b * 192 + i];
  for (int i = tid; i < kPoseFeats; i += nt) feats[i] = feat_g[b * kPoseFeats + i];
  const In* beta = beta_row(P, b);
  for (int64_t s = tid; s < S; s += nt) betas[s] = ld(beta + s);
  for (int j = tid; j < 15; j += nt) gtips[j] = gkps ? ld(gkps + b * 63 + 3 * (4 * (j / 3) + 4) + j % 3) : T(0);
  __syncthreads();
  T so[3] = {T(0), T(0), T(0)};
  for (int i = tid; i < nvv; i += nt) {
    const int64_t v = full ? i : P.tips[i];
    T vs[3], vp[3], Tm[12], g[3], d[3], Ov[12];
    vertex_shaped(v, V3, S, betas, P.vt, P.sd, vs);
    vertex_posed(v, V3, vs, feats, P.pd, vp);
    skin_matrix(P.w + 16 * v, As, Tm);
    if (full) {
      for (int c = 0; c < 3; ++c) g[c] = ld(gverts + (b * P.V + v) * 3 + c);
      for (int t = 0; t < kTips; ++t)
        if (P.tips[t] == v)
          for (int c = 0; c < 3; ++c) g[c] += gtips[3 * t + c];
    } else {
      for (int c = 0; c < 3; ++c) g[c] = gtips[3 * i + c];
    }
    skin_backward(Tm, vp, g, d, Ov);
    for (int c = 0; c < 3; ++c) dvp[3 * i + c] = d[c], so[c] += g[c];
    for (int c = 0; c < 12; ++c) O[c * nvv + i] = Ov[c];
  }
  // sum of vertex gradients (for d offset): warp shuffle, then warp partials in fixed order
  const int lane = tid & 31, warp = tid >> 5, nwarps = nt >> 5;
  for (int c = 0; c < 3; ++c) {
    T x = so[c];
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    if (lane == 0) red[c * 32 + warp] = x;
  }
  __syncthreads();
  if (tid < 3) {
    T x = T(0);
    for (int wi = 0; wi < nwarps; ++wi) x += red[tid * 32 + wi];
    gsum_g[b * 3 + tid] = x;
  }
  // dA_k[c] = sum_i w[v_i, k] O_i[c]: threads of a warp read 16 consecutive weights of one vertex.
  for (int pair = tid; pair < 192; pair += nt) {
    const int k = pair % 16, c = pair / 16;
    T acc = T(0);
    for (int i = 0; i < nvv; ++i) {
      const int64_t v = full ? i : P.tips[i];
      acc += P.w[v * 16 + k] * O[c * nvv + i];
    }
    dA_g[b * 192 + 12 * k + c] = acc;
  }
  // 135 pose-feature and S shape rows, one warp per row: coalesced row reads, shuffle reduction.
  for (int64_t r = warp; r < kPoseFeats + S; r += nwarps) {
    const T* row = r < kPoseFeats ? P.pd + r * V3 : P.sd + (r - kPoseFeats) * V3;
    T acc = T(0);
    for (int j = lane; j < 3 * nvv; j += 32) {
      const int i = j / 3, c = j % 3;
      const int64_t v = full ? i : P.tips[i];
      acc += __ldg(row + 3 * v + c) * dvp[j];
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) {
      if (r < kPoseFeats) dfeat_g[b * kPoseFeats + r] = acc;
      else dbv_g[b * S + (r - kPoseFeats)] = acc;
    }
  }
}

// One thread per sample: chain + Rodrigues backward, joints -> betas, offset -> trans.
template <class In, class T>
__global__ void __launch_bounds__(128) sample_backward_kernel(Params<In, T> P, const In* __restrict__ gkps,
                                                              const T* __restrict__ dA_g, const T* __restrict__ dfeat_g,
                                                              const T* __restrict__ dbv_g, const T* __restrict__ gsum_g,
                                                              T* __restrict__ partial, In* __restrict__ gbetas,
                                                              In* __restrict__ gpose, In* __restrict__ gtrans) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.B) return;
  T pose[48], RmI[144], J[48], GR[144], Jp[48], A[192], off[3];
  sample_state(P, b, pose, RmI, J, GR, Jp, A, off);
  T dJp[48], dR[144], dJ[48], doff[3];
  for (int m = 0; m < 48; ++m) dJp[m] = T(0);
  for (int c = 0; c < 3; ++c) doff[c] = gsum_g[b * 3 + c];
  if (gkps != nullptr) {
#pragma unroll
    for (int q = 0; q < kKeypoints; ++q) {
      const int src = keypoint_source(q);
      if (src < 16)
        for (int c = 0; c < 3; ++c) {
          const T g = ld(gkps + b * 63 + 3 * q + c);
          dJp[3 * src + c] += g;
          doff[c] += g;
        }
    }
  }
  for (int i = 0; i < 192; ++i) A[i] = dA_g[b * 192 + i];  // reuse A's storage for dA
  chain_backward(RmI, J, GR, A, dJp, dR, dJ);
  for (int p = 0; p < kPoseFeats; ++p) dR[9 + p] += dfeat_g[b * kPoseFeats + p];
  for (int k = 0; k < kJoints; ++k) {
    T dr[3];
    rodrigues_backward(pose + 3 * k, dR + 9 * k, dr);
    for (int c = 0; c < 3; ++c) st(gpose + b * 48 + 3 * k + c, dr[c]);
  }
  if (P.mode == 0)
    for (int c = 0; c < 3; ++c) dJ[c] -= doff[c];
  for (int64_t s = 0; s < P.S; ++s) {
    T acc = dbv_g[b * P.S + s];
    for (int m = 0; m < 48; ++m) acc += P.jsd[s * 48 + m] * dJ[m];
    if (P.rows == 1) partial[b * P.S + s] = acc;
    else st(gbetas + b * P.S + s, acc);
  }
  for (int c = 0; c < 3; ++c) st(gtrans + b * 3 + c, doff[c]);
}

// grad_betas[s] = sum_b partial[b, s] for shared betas; one block per s, fixed reduction order.
template <class In, class T>
__global__ void __launch_bounds__(256) reduce_betas_kernel(const T* __restrict__ partial, int64_t B, int64_t S,
                                                           In* __restrict__ gbetas) {
  __shared__ T red[256];
  const int64_t s = blockIdx.x;
  T acc = T(0);
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) acc += partial[b * S + s];
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h >>= 1) {
    if (static_cast<int>(threadIdx.x) < h) red[threadIdx.x] += red[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) st(gbetas + s, red[0]);
}

// ---------------------------------------------------------------- host side

Status cuda_error(const char* op, const char* what, cudaError_t e) {
  return Status::runtime_error(std::string(op) + ": " + what + " failed: " + cudaGetErrorName(e) + " (" +
                               cudaGetErrorString(e) + ")");
}

// Every non-null pointer must be device (or managed) memory of the current device.
Status check_device_pointers(const char* op, std::initializer_list<std::pair<const void*, const char*>> ptrs) {
  int dev = -1;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_error(op, "cudaGetDevice", e);
  }
  for (const auto& pn : ptrs) {
    if (pn.first == nullptr) continue;
    cudaPointerAttributes attr;
    e = cudaPointerGetAttributes(&attr, pn.first);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return Status::value_error(std::string(op) + ": argument " + pn.second + " is not a CUDA pointer (" +
                                 cudaGetErrorString(e) + ")");
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
      return Status::value_error(std::string(op) + ": argument " + pn.second +
                                 " is not device memory; move the tensor to the GPU");
    if (attr.device != dev)
      return Status::value_error(std::string(op) + ": argument " + pn.second + " lives on cuda:" +
                                 std::to_string(attr.device) + " but the current device is cuda:" +
                                 std::to_string(dev) + "; call under torch.cuda.device(tensor.device)");
  }
  return {};
}

template <class In, class T>
Params<In, T> make_params(const ManoArgs& a) {
  Params<In, T> P;
  P.betas = static_cast<const In*>(a.betas);
  P.pose = static_cast<const In*>(a.pose);
  P.trans = static_cast<const In*>(a.trans);
  P.vt = static_cast<const T*>(a.v_template);
  P.sd = static_cast<const T*>(a.shapedirs_t);
  P.pd = static_cast<const T*>(a.posedirs_t);
  P.jt = static_cast<const T*>(a.j_template);
  P.jsd = static_cast<const T*>(a.j_shapedirs_t);
  P.w = static_cast<const T*>(a.weights);
  P.tips = a.tip_ids;
  P.rows = a.betas_rows;
  P.B = a.B, P.V = a.V, P.S = a.S;
  P.mode = a.trans_mode;
  return P;
}

// Dynamic shared memory above the 48 KB default needs an opt-in per kernel.
template <class K>
Status set_smem(const char* op, K kernel, size_t bytes) {
  int dev = 0, max_optin = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (bytes > static_cast<size_t>(max_optin))
    return Status::value_error(std::string(op) + ": needs " + std::to_string(bytes) + " bytes of shared memory (" +
                               "V or S too large for this GPU, which allows " + std::to_string(max_optin) + ")");
  if (bytes > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (e != cudaSuccess) return cuda_error(op, "cudaFuncSetAttribute", e);
  }
  return {};
}

// Scratch from the stream-ordered pool: freed on the stream after the kernels that use it.
struct StreamBuffer {
  void* p = nullptr;
  cudaStream_t s;
  explicit StreamBuffer(cudaStream_t st) : s(st) {}
  cudaError_t alloc(size_t bytes) { return cudaMallocAsync(&p, bytes, s); }
  ~StreamBuffer() {
    if (p) cudaFreeAsync(p, s);
  }
};

int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

template <class In, class T>
Status forward_typed(const char* op, const ManoArgs& a, const ManoForwardOut& out, cudaStream_t stream) {
  const Params<In, T> P = make_params<In, T>(a);
  In* kp = static_cast<In*>(out.keypoints);
  if (out.verts == nullptr) {
    const int threads = 64;  // 40 KB of shared memory per block for float32 and S = 10
    const JointsSmem L(a.S, threads, sizeof(T), sizeof(In));
    Status st = set_smem(op, joints_kernel<In, T>, L.total);
    if (!st.ok()) return st;
    joints_kernel<In, T><<<blocks_for(a.B, threads), threads, L.total, stream>>>(P, L, kp);
  } else {
    StreamBuffer buf(stream);
    const size_t per = 192 + kPoseFeats + 3;
    cudaError_t e = buf.alloc(sizeof(T) * per * a.B);
    if (e != cudaSuccess) return cuda_error(op, "cudaMallocAsync (scratch)", e);
    T* A = static_cast<T*>(buf.p);
    T* feat = A + 192 * a.B;
    T* off = feat + kPoseFeats * a.B;
    sample_kernel<In, T><<<blocks_for(a.B, 128), 128, 0, stream>>>(P, A, feat, off, kp);
    // Vertex tiles: fewest tiles of <= 128 threads, balanced (778 -> 7 tiles of 112: 99% busy).
    const int64_t tiles = (a.V + kMaxVT - 1) / kMaxVT;
    const int vt = static_cast<int>(((a.V + tiles - 1) / tiles + 31) / 32 * 32);
    const int64_t vtiles = (a.V + vt - 1) / vt;
    if (vtiles > 65535) return Status::value_error(std::string(op) + ": V too large");
    constexpr int TS = sizeof(T) == 8 ? 8 : 16;  // keeps static shared memory under 48 KB
    dim3 grid(static_cast<unsigned>((a.B + TS - 1) / TS), static_cast<unsigned>(vtiles));
    vertex_kernel<In, T, TS><<<grid, vt, 0, stream>>>(P, A, feat, off, vt, static_cast<In*>(out.verts), kp);
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error(op, "kernel launch", e);
  return {};
}

template <class In, class T>
Status backward_typed(const char* op, const ManoArgs& a, const ManoBackwardIO& io, cudaStream_t stream) {
  const Params<In, T> P = make_params<In, T>(a);
  const int64_t B = a.B, S = a.S;
  In* gbetas = static_cast<In*>(io.grad_betas);
  StreamBuffer buf(stream);
  // A, feat, off | dA, dfeat, dbv (S), gsum (3) | partial (S)
  const size_t per = 192 + kPoseFeats + 3 + 192 + kPoseFeats + S + 3 + S;
  if (B > 0) {
    cudaError_t e = buf.alloc(sizeof(T) * per * B);
    if (e != cudaSuccess) return cuda_error(op, "cudaMallocAsync (scratch)", e);
    T* A = static_cast<T*>(buf.p);
    T* feat = A + 192 * B;
    T* off = feat + kPoseFeats * B;
    T* dA = off + 3 * B;
    T* dfeat = dA + 192 * B;
    T* dbv = dfeat + kPoseFeats * B;
    T* gsum = dbv + S * B;
    T* partial = gsum + 3 * B;
    const In* gv = static_cast<const In*>(io.grad_verts);
    const In* gk = static_cast<const In*>(io.grad_keypoints);
    sample_kernel<In, T><<<blocks_for(B, 128), 128, 0, stream>>>(P, A, feat, off, nullptr);
    const int nvv = gv ? static_cast<int>(a.V) : kTips;
    const size_t smem = sizeof(T) * (192 + kPoseFeats + S + 16 + 96 + 15 * static_cast<size_t>(nvv));
    Status st = set_smem(op, vertex_backward_kernel<In, T>, smem);
    if (!st.ok()) return st;
    const int threads = gv ? 256 : 64;  // keypoint-only: 5 vertices, 2 warps suffice for the rows
    if (B > 0x7fffffff) return Status::value_error(std::string(op) + ": batch too large");
    vertex_backward_kernel<In, T><<<static_cast<unsigned>(B), threads, smem, stream>>>(P, gv, gk, A, feat, dA, dfeat,
                                                                                         dbv, gsum);
    sample_backward_kernel<In, T><<<blocks_for(B, 128), 128, 0, stream>>>(
        P, gk, dA, dfeat, dbv, gsum, partial, gbetas, static_cast<In*>(io.grad_pose), static_cast<In*>(io.grad_trans));
    if (a.betas_rows == 1) reduce_betas_kernel<In, T><<<static_cast<unsigned>(S), 256, 0, stream>>>(partial, B, S, gbetas);
  } else if (a.betas_rows == 1) {  // empty batch: the sum is 0
    reduce_betas_kernel<In, T><<<static_cast<unsigned>(S), 256, 0, stream>>>(nullptr, 0, S, gbetas);
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error(op, "kernel launch", e);
  return {};
}

template <template <class, class> class F, class... Args>
Status dispatch(int dtype, Args&&... args) {
  switch (dtype) {
    case kF32: return F<float, float>::run(args...);
    case kF64: return F<double, double>::run(args...);
    case kF16: return F<__half, float>::run(args...);
    default: return F<__nv_bfloat16, float>::run(args...);
  }
}
template <class In, class T>
struct Fwd {
  static Status run(const char* op, const ManoArgs& a, const ManoForwardOut& o, cudaStream_t s) {
    return forward_typed<In, T>(op, a, o, s);
  }
};
template <class In, class T>
struct Bwd {
  static Status run(const char* op, const ManoArgs& a, const ManoBackwardIO& io, cudaStream_t s) {
    return backward_typed<In, T>(op, a, io, s);
  }
};

Status check_common(const char* op, const ManoArgs& a) {
  if (a.S > 4096) return Status::value_error(std::string(op) + ": S (betas) must be <= 4096 on CUDA");
  if (a.V > (int64_t{1} << 24)) return Status::value_error(std::string(op) + ": V must be < 2^24 on CUDA");
  return check_device_pointers(op, {{a.betas, "betas"}, {a.pose, "pose"}, {a.trans, "trans"},
                                    {a.v_template, "v_template"}, {a.shapedirs_t, "shapedirs_t"},
                                    {a.posedirs_t, "posedirs_t"}, {a.j_template, "j_template"},
                                    {a.j_shapedirs_t, "j_shapedirs_t"}, {a.weights, "weights"},
                                    {a.tip_ids, "tip_ids"}});
}

}  // namespace

Status forward_cuda(const ManoArgs& a, const ManoForwardOut& out, void* stream) {
  const char* op = "mano_forward_cuda";
  Status st = validate(op, a, kBF16);
  if (!st.ok()) return st;
  if (a.B == 0) return {};
  if (out.keypoints == nullptr) return Status::value_error(std::string(op) + ": argument keypoints_out is a null pointer");
  st = check_common(op, a);
  if (!st.ok()) return st;
  st = check_device_pointers(op, {{out.verts, "verts_out"}, {out.keypoints, "keypoints_out"}});
  if (!st.ok()) return st;
  return dispatch<Fwd>(a.dtype, op, a, out, static_cast<cudaStream_t>(stream));
}

Status backward_cuda(const ManoArgs& a, const ManoBackwardIO& io, void* stream) {
  const char* op = "mano_backward_cuda";
  Status st = validate(op, a, kBF16);
  if (!st.ok()) return st;
  st = validate_backward_outputs(op, a, io);
  if (!st.ok()) return st;
  if (a.B == 0 && a.betas_rows != 1) return {};
  st = check_common(op, a);
  if (!st.ok()) return st;
  st = check_device_pointers(op, {{io.grad_verts, "grad_verts"}, {io.grad_keypoints, "grad_keypoints"},
                                  {io.grad_betas, "grad_betas_out"}, {io.grad_pose, "grad_pose_out"},
                                  {io.grad_trans, "grad_trans_out"}});
  if (!st.ok()) return st;
  return dispatch<Bwd>(a.dtype, op, a, io, static_cast<cudaStream_t>(stream));
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver/device: clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

}  // namespace mano
}  // namespace bh0
