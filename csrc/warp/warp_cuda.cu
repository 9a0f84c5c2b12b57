// warp_align on CUDA: one thread per output pixel.
//
// Grid (ceil(h*w / 256), min(B, 65535)) with a grid-stride loop over the batch. Consecutive threads
// take consecutive output pixels of one image, so each store into a channel plane of the CHW output
// (and into the mask) is coalesced; the taps are read through the read-only cache from the uint8
// HWC image, whose neighbouring output pixels hit neighbouring source bytes for any smooth map.
// The coordinate and lens math is the CPU's (warp.h: distort_project, clamp_coord, in_footprint).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "common/cuda_check.cuh"
#include "warp/warp.h"

namespace bh0 {
namespace warp {
namespace {

constexpr int kThreads = 256;

struct Chan {
  float scale[kMaxChannels], bias[kMaxChannels], fill[kMaxChannels];
};

template <class T>
__device__ __forceinline__ T convert(float v);
template <>
__device__ __forceinline__ float convert<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half convert<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ uint8_t convert<uint8_t>(float v) { return static_cast<uint8_t>(v + 0.5f); }

template <int C, class OutT, int MODE, int DIST>
__global__ void __launch_bounds__(kThreads) warp_kernel(const uint8_t* __restrict__ src, const float* __restrict__ params,
                                                        OutT* __restrict__ out, uint8_t* __restrict__ mask, int B, int H,
                                                        int W, int64_t stride_b, int64_t stride_h, int h, int w,
                                                        Chan ch) {
  const int64_t npix = static_cast<int64_t>(h) * w;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= npix) return;
  const int y = static_cast<int>(i / w), x = static_cast<int>(i - static_cast<int64_t>(y) * w);
  const float Wf = static_cast<float>(W), Hf = static_cast<float>(H);
  constexpr bool kNorm = !std::is_same<OutT, uint8_t>::value;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {
    const float* p = params + static_cast<int64_t>(b) * kNumParams;
    float sx = fmaf(p[0], static_cast<float>(x), fmaf(p[1], static_cast<float>(y), p[2]));
    float sy = fmaf(p[3], static_cast<float>(x), fmaf(p[4], static_cast<float>(y), p[5]));
    if (DIST != kNoDist) distort_project<DIST>(p, sx, sy, sx, sy);
    if (mask) mask[b * npix + i] = in_footprint(sx, sy, Wf, Hf) ? 1 : 0;
    const uint8_t* img = src + b * stride_b;
    OutT* o = out + static_cast<int64_t>(b) * C * npix + i;
    const float cx = clamp_coord(sx, Wf), cy = clamp_coord(sy, Hf);
    if (MODE == kNearest) {
      const int ix = static_cast<int>(floorf(cx + 0.5f)), iy = static_cast<int>(floorf(cy + 0.5f));
      const bool ok = ix >= 0 && ix < W && iy >= 0 && iy < H;
      const uint8_t* q = img + static_cast<int64_t>(iy) * stride_h + static_cast<int64_t>(ix) * C;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const float v = ok ? static_cast<float>(__ldg(q + c)) : ch.fill[c];
        o[c * npix] = convert<OutT>(kNorm ? fmaf(v, ch.scale[c], ch.bias[c]) : v);
      }
    } else {
      const float fx0 = floorf(cx), fy0 = floorf(cy);
      const float ax = cx - fx0, ay = cy - fy0;
      const int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
      const bool ix0 = x0 >= 0 && x0 < W, ix1 = x0 + 1 >= 0 && x0 + 1 < W;
      const bool iy0 = y0 >= 0 && y0 < H, iy1 = y0 + 1 >= 0 && y0 + 1 < H;
      const float w00 = (1.f - ax) * (1.f - ay), w01 = ax * (1.f - ay), w10 = (1.f - ax) * ay, w11 = ax * ay;
      const uint8_t* r0 = img + static_cast<int64_t>(y0) * stride_h + static_cast<int64_t>(x0) * C;
      const uint8_t* r1 = r0 + stride_h;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const float f = ch.fill[c];
        const float t00 = iy0 && ix0 ? static_cast<float>(__ldg(r0 + c)) : f;
        const float t01 = iy0 && ix1 ? static_cast<float>(__ldg(r0 + C + c)) : f;
        const float t10 = iy1 && ix0 ? static_cast<float>(__ldg(r1 + c)) : f;
        const float t11 = iy1 && ix1 ? static_cast<float>(__ldg(r1 + C + c)) : f;
        const float v = w00 * t00 + w01 * t01 + w10 * t10 + w11 * t11;
        o[c * npix] = convert<OutT>(fmaf(v, ch.scale[c], ch.bias[c]));
      }
    }
  }
}

template <int C, class OutT, int MODE, int DIST>
void launch(const WarpArgs& a, const Chan& ch, cudaStream_t s) {
  const int64_t npix = a.h * a.w;
  dim3 grid(static_cast<unsigned>((npix + kThreads - 1) / kThreads), static_cast<unsigned>(a.B < 65535 ? a.B : 65535));
  warp_kernel<C, OutT, MODE, DIST><<<grid, kThreads, 0, s>>>(
      a.src, a.params, static_cast<OutT*>(a.out), a.mask, static_cast<int>(a.B), static_cast<int>(a.H),
      static_cast<int>(a.W), a.stride_b, a.stride_h, static_cast<int>(a.h), static_cast<int>(a.w), ch);
}

template <int C, class OutT, int MODE>
void by_dist(const WarpArgs& a, const Chan& ch, cudaStream_t s) {
  if (a.dist_model == kRadTan) launch<C, OutT, MODE, kRadTan>(a, ch, s);
  else if (a.dist_model == kFisheye) launch<C, OutT, MODE, kFisheye>(a, ch, s);
  else launch<C, OutT, MODE, kNoDist>(a, ch, s);
}

template <int C, class OutT>
void by_mode(const WarpArgs& a, const Chan& ch, cudaStream_t s) {
  if (a.mode == kNearest) by_dist<C, OutT, kNearest>(a, ch, s);
  else by_dist<C, OutT, kBilinear>(a, ch, s);
}

template <int C>
void by_out(const WarpArgs& a, const Chan& ch, cudaStream_t s) {
  switch (a.out_dtype) {
    case kOutF32: by_mode<C, float>(a, ch, s); break;
    case kOutBF16: by_mode<C, __nv_bfloat16>(a, ch, s); break;
    case kOutF16: by_mode<C, __half>(a, ch, s); break;
    default: by_dist<C, uint8_t, kNearest>(a, ch, s); break;  // validated: uint8 only with nearest
  }
}

}  // namespace

Status warp_align_cuda(const WarpArgs& a, void* stream) {
  const char* op = "warp_align_cuda";
  Status st = validate(op, a);
  if (!st.ok() || a.B == 0) return st;
  if (a.h * a.w > (int64_t(1) << 31) - kThreads)
    return Status::value_error(std::string(op) + ": output planes above 2^31 pixels are not supported");
  if (a.H > (int64_t(1) << 30) || a.W > (int64_t(1) << 30))
    return Status::value_error(std::string(op) + ": image sides above 2^30 are not supported");
  st = check_device_pointers(op, {{a.src, "images"}, {a.params, "params"}, {a.out, "out"}, {a.mask, "mask"}});
  if (!st.ok()) return st;
  Chan ch{};
  for (int64_t c = 0; c < a.C; ++c) {
    ch.scale[c] = a.scale[c];
    ch.bias[c] = a.bias[c];
    ch.fill[c] = a.fill[c];
  }
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (a.C) {
    case 1: by_out<1>(a, ch, s); break;
    case 3: by_out<3>(a, ch, s); break;
    default: by_out<4>(a, ch, s); break;
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error(op, "kernel launch", e);
  return {};
}

}  // namespace warp
}  // namespace bh0
