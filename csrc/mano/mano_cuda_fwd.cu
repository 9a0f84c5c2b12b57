// CUDA MANO forward (shared pieces: mano_cuda_common.cuh). Per-sample math: mano_math.h (the same functions the CPU tests
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

#include "mano/mano_cuda_common.cuh"

namespace bh0 {
namespace mano {
namespace cuda_detail {

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
struct Fwd {
  static Status run(const char* op, const ManoArgs& a, const ManoForwardOut& o, cudaStream_t s) {
    return forward_typed<In, T>(op, a, o, s);
  }
};
}  // namespace cuda_detail

using namespace cuda_detail;

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
