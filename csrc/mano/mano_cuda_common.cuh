// Shared pieces of the CUDA MANO kernels (mano_cuda_fwd.cu, mano_cuda_bwd.cu): dtype loads and
// stores, kernel parameters, the per-sample chain kernel both directions start with, and the
// host-side checks and dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/cuda_check.cuh"
#include "mano/mano.h"
#include "mano/mano_math.h"
namespace bh0 {
namespace mano {
namespace cuda_detail {


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

// ---------------------------------------------------------------- host side

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

inline int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

template <template <class, class> class F, class... Args>
Status dispatch(int dtype, Args&&... args) {
  switch (dtype) {
    case kF32: return F<float, float>::run(args...);
    case kF64: return F<double, double>::run(args...);
    case kF16: return F<__half, float>::run(args...);
    default: return F<__nv_bfloat16, float>::run(args...);
  }
}
inline Status check_common(const char* op, const ManoArgs& a) {
  if (a.S > 4096) return Status::value_error(std::string(op) + ": S (betas) must be <= 4096 on CUDA");
  if (a.V > (int64_t{1} << 24)) return Status::value_error(std::string(op) + ": V must be < 2^24 on CUDA");
  return check_device_pointers(op, {{a.betas, "betas"}, {a.pose, "pose"}, {a.trans, "trans"},
                                    {a.v_template, "v_template"}, {a.shapedirs_t, "shapedirs_t"},
                                    {a.posedirs_t, "posedirs_t"}, {a.j_template, "j_template"},
                                    {a.j_shapedirs_t, "j_shapedirs_t"}, {a.weights, "weights"},
                                    {a.tip_ids, "tip_ids"}});
}

}  // namespace cuda_detail
}  // namespace mano
}  // namespace bh0
