// CUDA MANO backward (shared pieces: mano_cuda_common.cuh). Per-sample math: mano_math.h (the same functions the CPU tests
// check). Per-sample tensors may be float32/float64/float16/bfloat16 (In); arithmetic and the
// model constants are float32 (T), or float64 for float64 inputs.
//
// Backward: sample_kernel (recompute A, features), vertex_backward_kernel (one block per sample:
//   per-vertex skinning backward into shared memory, then block reductions for dA (16x12) and
//   the 135 + S dot products with posedirs/shapedirs), sample_backward_kernel (one thread per
//   sample: chain and Rodrigues backward), reduce_betas_kernel (fixed-order batch sum of the
//   per-sample grad_betas when betas are shared: deterministic, no atomics).

#include "mano/mano_cuda_common.cuh"

namespace bh0 {
namespace mano {
namespace cuda_detail {

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

template <class In, class T>
struct Bwd {
  static Status run(const char* op, const ManoArgs& a, const ManoBackwardIO& io, cudaStream_t s) {
    return backward_typed<In, T>(op, a, io, s);
  }
};

}  // namespace cuda_detail

using namespace cuda_detail;

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

}  // namespace mano
}  // namespace bh0
