// grq_encode on CUDA: a tiled SIMT GEMM (residual tile x codebook^T) with the argmin fused into its
// epilogue. Nothing of size N x K ever reaches global memory.
//
// Grid (ceil(N / BM), G), 256 threads seen as 16 x 16: ty = tid / 16 owns the TM rows ty*TM ..
// ty*TM+TM-1 of the row tile, tx = tid % 16 owns 8 codes of each 128-code tile, tx*4 .. tx*4+3 and
// 64+tx*4 .. 64+tx*4+3 (two float4 strips, so a half-warp's shared loads are conflict free).
// BM = 16*TM rows per block with TM = 4, 2 or 1 (BM 64, 32, 16), BN = 128 codes per tile, BK = 16
// channels per codebook chunk.
//
// Shared memory (dynamic, float32 unless noted):
//   R    Dgp x (BM+4)   the block's residuals, channel-major (a thread's TM rows at one channel are
//                       one vector load); Dgp = Dg rounded up to BK, padding channels held at 0.
//                       Loaded once from x, updated in place after every layer, never leaves chip.
//   Cs   2 x BK x (BN+4) double-buffered chunk of the codebook, BN codes x BK channels, transposed.
//   sel  L x BM (int32) the chosen code of every row and layer (for `quantized` at the end).
//   bytes = 4 * (Dgp*(BM+4) + 2*BK*(BN+4) + L*BM), e.g. Dg=256, L=8, BM=64: 88,576 (two blocks per
//   SM on A100/H100/H200).
// BM is the largest of 64/32/16 whose block fits the device (opt-in limit); it drops a step when
// that lets two blocks share an SM, and while there are fewer row tiles x G than SMs (small N).
//
// Per layer l the block streams codebook (g, l) in BN x BK chunks (tiles of BN codes in increasing
// k, each tile's chunks in increasing channel). While the FMAs of chunk s run from Cs[s&1], each
// thread holds its 8 values of chunk s+1 in registers and stores them into Cs[(s+1)&1] afterwards:
// one __syncthreads per chunk. Registers per thread: the TM x 8 dot products, the prefetched chunk,
// and per owned row the best (score, index) so far. At the end of a tile the dot products become
// scores ||C_k||^2 - 2<r, C_k> (codes k >= K score +inf, so they never win) and are merged into
// the running best with a strict < in increasing k: a thread keeps the lowest index among its
// ties. After the last tile the 16 threads of a row (one half-warp) reduce their bests with
// __shfl_xor, preferring the smaller index on equal scores, so the result is the first minimum of
// the row. Then codes are written, and r -= C[g,l,c] in shared memory (all threads, coalesced over
// channels). `quantized` is written once at the end as 0 + C[g,0,c0] + C[g,1,c1] + ... in float32,
// the order the reference accumulates it in.
//
// Cost: 2*N*G*L*K*Dg FLOPs (FP32 FMA). Bytes: x read once (N*G*Dg elements), the codebook read once
// per row tile and layer (ceil(N/BM)*G*L*K*Dg*4 bytes, served mostly by L2: BM=64 gives 32 FLOPs per
// byte), codes and quantized written once, plus L*BM*Dg codebook floats per block gathered for the
// residual update. No TF32 or tensor cores: TF32 keeps 10 mantissa bits, far coarser than the gaps
// between competing scores, and would change codes well away from genuine near-ties; every dot
// product here is a float32 FMA chain over increasing channels (one rounding per channel).
// Under --use_fast_math, fmaf/+/-/* keep their IEEE rounding; only denormals are flushed to zero
// (scores and residuals of magnitude < 1.2e-38 are treated as 0). No division, sqrt or
// transcendental is used.
//
// NaN in x (rejected by the caller): NaN scores never pass the strict <, so every index stays in
// [0, K) (index 0 when nothing compares smaller than +inf); no hang, no out-of-bounds access.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "common/cuda_check.cuh"
#include "grq/grq.h"

namespace bh0 {
namespace grq {
namespace {

constexpr int kThreads = 256;        // 16 x 16
constexpr int kBN = 128;             // codes per tile (16 threads x 8)
constexpr int kBK = 16;              // channels per codebook chunk
constexpr int kLdc = kBN + 4;        // row pitch of a chunk in shared memory (keeps float4 alignment)
constexpr int kPerThread = kBN * kBK / kThreads;  // chunk values loaded per thread: 8
static_assert(kThreads == 16 * 16 && kBN == 16 * 8 && kBK == 16, "thread layout below assumes these");

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// The TM consecutive floats at p (16-byte aligned for TM = 4, 8-byte for TM = 2).
template <int TM>
__device__ __forceinline__ void load_rows(const float* p, float (&a)[TM]) {
  if constexpr (TM == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    a[0] = v.x, a[1] = v.y, a[2] = v.z, a[3] = v.w;
  } else if constexpr (TM == 2) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    a[0] = v.x, a[1] = v.y;
  } else {
    a[0] = p[0];
  }
}

// Code column (0..kBN-1 within the tile) of a thread's j-th accumulator.
__device__ __forceinline__ int code_col(int tx, int j) { return (j < 4 ? 0 : 64 - 4) + tx * 4 + j; }

template <class T, int TM>
__global__ void __launch_bounds__(kThreads, 2)
    grq_kernel(const T* __restrict__ x, int64_t x_stride, const float* __restrict__ codebooks,
               const float* __restrict__ norms, int64_t* __restrict__ codes, float* __restrict__ quantized,
               int64_t N, int G, int L, int K, int Dg) {
  constexpr int BM = 16 * TM;
  constexpr int LDR = BM + 4;  // row pitch of R: keeps the TM-vector loads aligned
  extern __shared__ float4 smem_f4[];
  const int Dgp = (Dg + kBK - 1) / kBK * kBK;
  float* R = reinterpret_cast<float*>(smem_f4);  // [Dgp][LDR]
  float* Cs = R + Dgp * LDR;                      // [2][kBK][kLdc]; Dgp*LDR is a multiple of 16 floats
  int* sel = reinterpret_cast<int*>(Cs + 2 * kBK * kLdc);  // [L][BM]

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int g = blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int rows = N - row0 < BM ? static_cast<int>(N - row0) : BM;  // valid rows of this tile
  const int64_t GD = static_cast<int64_t>(G) * Dg;

  // Residual tile, converted to float32; rows past N and channels past Dg are 0.
  for (int e = tid; e < BM * Dgp; e += kThreads) {
    const int m = e / Dgp, d = e - m * Dgp;
    float v = 0.f;
    if (m < rows && d < Dg) v = to_float(x[(row0 + m) * x_stride + static_cast<int64_t>(g) * Dg + d]);
    R[d * LDR + m] = v;
  }

  const int nchunks = Dgp / kBK, ntiles = (K + kBN - 1) / kBN, nsteps = ntiles * nchunks;
  const int lk = tid & (kBK - 1), lc = tid >> 4;  // this thread loads channel lk of codes lc + 16*i
  const float* Ra = R + ty * TM;                  // this thread's rows, channel 0
  const float* Bb = Cs + tx * 4;                  // this thread's first code strip, buffer 0, channel 0

  for (int l = 0; l < L; ++l) {
    const int64_t gl = static_cast<int64_t>(g) * L + l;
    const float* Cl = codebooks + gl * K * Dg;  // (K, Dg); K*Dg < 2^31 (checked on the host)
    const float* nl = norms + gl * K;

    float pre[kPerThread];
    auto load_chunk = [&](int step) {
      const int tile = step / nchunks, d = (step - tile * nchunks) * kBK + lk;
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        const int k = tile * kBN + lc + 16 * i;
        pre[i] = (k < K && d < Dg) ? __ldg(Cl + k * Dg + d) : 0.f;
      }
    };
    auto store_chunk = [&](int buf) {
      float* dst = Cs + buf * (kBK * kLdc) + lk * kLdc + lc;
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) dst[16 * i] = pre[i];
    };

    float acc[TM][8];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;
    float best_s[TM];
    int best_i[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) best_s[i] = INFINITY, best_i[i] = 0;

    // Cs[0] is free: the last reads of it (previous layer) precede that layer's final barrier.
    load_chunk(0);
    store_chunk(0);
    __syncthreads();  // also publishes R (initial load, or the previous layer's update)

    for (int s = 0; s < nsteps; ++s) {
      const int tile = s / nchunks, c = s - tile * nchunks;
      if (s + 1 < nsteps) load_chunk(s + 1);  // global loads in flight during the FMAs below

      const float* ra = Ra + c * kBK * LDR;
      const float* bb = Bb + (s & 1) * (kBK * kLdc);
#pragma unroll
      for (int kk = 0; kk < kBK; ++kk) {
        float a[TM];
        load_rows<TM>(ra + kk * LDR, a);
        const float4 b0 = *reinterpret_cast<const float4*>(bb + kk * kLdc);
        const float4 b1 = *reinterpret_cast<const float4*>(bb + kk * kLdc + 64);
        const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }

      if (c == nchunks - 1) {  // tile done: scores, merged into the running best (increasing k)
        const int k0 = tile * kBN;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int k = k0 + code_col(tx, j);
          const float nrm = k < K ? __ldg(nl + k) : 0.f;
#pragma unroll
          for (int i = 0; i < TM; ++i) {
            const float sc = k < K ? nrm - 2.f * acc[i][j] : INFINITY;
            if (sc < best_s[i]) best_s[i] = sc, best_i[i] = k;
            acc[i][j] = 0.f;
          }
        }
      }

      // Cs[(s+1)&1] was last read at step s-1, before the barrier that ended it.
      if (s + 1 < nsteps) store_chunk((s + 1) & 1);
      __syncthreads();
    }

    // Row minimum over the half-warp that owns the row; equal scores: smaller index.
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      float bs = best_s[i];
      int bi = best_i[i];
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) {
        const float os = __shfl_xor_sync(0xffffffffu, bs, off);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (os < bs || (os == bs && oi < bi)) bs = os, bi = oi;
      }
      if (tx == 0) {
        const int m = ty * TM + i;
        sel[l * BM + m] = bi;
        if (m < rows) codes[(row0 + m) * G * L + gl] = bi;  // codes[n, g, l], gl = g*L + l
      }
    }
    __syncthreads();  // sel visible to all threads

    if (l + 1 < L) {  // r -= C[g, l, c], coalesced over channels
      for (int e = tid; e < BM * Dg; e += kThreads) {
        const int m = e / Dg, d = e - m * Dg;
        R[d * LDR + m] -= __ldg(Cl + sel[l * BM + m] * Dg + d);
      }
      // The barrier at the top of the next layer orders these writes before the FMAs that read R.
    }
  }

  if (quantized != nullptr) {
    for (int e = tid; e < BM * Dg; e += kThreads) {
      const int m = e / Dg, d = e - m * Dg;
      if (m >= rows) continue;
      float q = 0.f;
      for (int l = 0; l < L; ++l)
        q += __ldg(codebooks + (static_cast<int64_t>(g) * L + l) * K * Dg + sel[l * BM + m] * Dg + d);
      quantized[(row0 + m) * GD + static_cast<int64_t>(g) * Dg + d] = q;
    }
  }
}

// Dynamic shared memory of one block (see the header comment).
int64_t smem_bytes(int64_t Dg, int64_t L, int tm) {
  const int64_t bm = 16 * tm, dgp = (Dg + kBK - 1) / kBK * kBK;
  return static_cast<int64_t>(sizeof(float)) * (dgp * (bm + 4) + 2 * kBK * kLdc) +
         static_cast<int64_t>(sizeof(int)) * L * bm;
}

template <class T, int TM>
Status launch(const char* op, const GrqArgs& a, size_t smem, cudaStream_t s) {
  auto kernel = grq_kernel<T, TM>;
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem));
    if (e != cudaSuccess) {
      cudaGetLastError();
      return cuda_error(op, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", e);
    }
  }
  const int64_t bm = 16 * TM;
  const dim3 grid(static_cast<unsigned>((a.N + bm - 1) / bm), static_cast<unsigned>(a.G));
  kernel<<<grid, kThreads, smem, s>>>(static_cast<const T*>(a.x), a.x_stride, a.codebooks, a.code_norms, a.codes,
                                      a.quantized, a.N, static_cast<int>(a.G), static_cast<int>(a.L),
                                      static_cast<int>(a.K), static_cast<int>(a.Dg));
  return {};
}

template <class T>
Status by_tm(const char* op, const GrqArgs& a, int tm, size_t smem, cudaStream_t s) {
  switch (tm) {
    case 4: return launch<T, 4>(op, a, smem, s);
    case 2: return launch<T, 2>(op, a, smem, s);
    default: return launch<T, 1>(op, a, smem, s);
  }
}

}  // namespace

Status grq_encode_cuda(const GrqArgs& a, void* stream) {
  const char* op = "grq_encode_cuda";
  Status st = validate(op, a);
  if (!st.ok()) return st;
  if (a.N == 0) return {};
  if (a.G > 65535) return Status::value_error(std::string(op) + ": G = " + std::to_string(a.G) + " above 65535");
  if (a.K > (INT_MAX - kBN) / a.Dg)  // 32-bit offsets within one layer's codebook
    return Status::value_error(std::string(op) + ": K*Dg = " + std::to_string(a.K) + "*" + std::to_string(a.Dg) +
                               " (one layer's codebook) above 2^31 - 129 is not supported");
  if (a.L > 1024) return Status::value_error(std::string(op) + ": L = " + std::to_string(a.L) + " above 1024");
  if ((a.N + 15) / 16 > INT_MAX)
    return Status::value_error(std::string(op) + ": N = " + std::to_string(a.N) + " is too large");
  st = check_device_pointers(op, {{a.x, "x"},
                                  {a.codebooks, "codebooks"},
                                  {a.code_norms, "code_norms"},
                                  {a.codes, "codes"},
                                  {a.quantized, "quantized"}});
  if (!st.ok()) return st;

  int dev = 0, optin = 0, per_sm = 0, reserved = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_error(op, "cudaDeviceGetAttribute", e);
  }

  // Rows per block: the largest BM = 16*tm that fits; one step smaller if that lets two blocks
  // share an SM; smaller still while the row tiles x G do not cover the SMs.
  int tm = 0;
  for (int t : {4, 2, 1})
    if (smem_bytes(a.Dg, a.L, t) <= optin) {
      tm = t;
      break;
    }
  if (tm == 0)
    return Status::value_error(std::string(op) + ": Dg = " + std::to_string(a.Dg) + " (with L = " +
                               std::to_string(a.L) + ") needs " + std::to_string(smem_bytes(a.Dg, a.L, 1)) +
                               " bytes of shared memory per block even with 16 rows per block; this device allows " +
                               std::to_string(optin));
  auto two_per_sm = [&](int t) { return 2 * (smem_bytes(a.Dg, a.L, t) + reserved) <= per_sm; };
  if (tm > 1 && !two_per_sm(tm) && two_per_sm(tm / 2)) tm /= 2;
  while (tm > 1 && (a.N + 16 * tm - 1) / (16 * tm) * a.G < sms) tm /= 2;
  if (a.tile_rows != 0) {  // tests: force one tile path (validate() checked 16/32/64)
    const int want = a.tile_rows / 16;
    if (smem_bytes(a.Dg, a.L, want) > optin)
      return Status::value_error(std::string(op) + ": tile_rows = " + std::to_string(a.tile_rows) +
                                 " needs more shared memory than this device allows for Dg = " + std::to_string(a.Dg));
    tm = want;
  }
  const size_t smem = static_cast<size_t>(smem_bytes(a.Dg, a.L, tm));

  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (a.x_dtype) {
    case kF16: st = by_tm<__half>(op, a, tm, smem, s); break;
    case kBF16: st = by_tm<__nv_bfloat16>(op, a, tm, smem, s); break;
    default: st = by_tm<float>(op, a, tm, smem, s); break;
  }
  if (!st.ok()) return st;
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error(op, "kernel launch", e);
  return {};
}

}  // namespace grq
}  // namespace bh0
