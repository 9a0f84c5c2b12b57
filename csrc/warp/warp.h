// Raw-pointer launchers of warp_align (no torch, no pybind11 here) and the per-pixel math shared by
// the CPU (warp_cpu.cpp) and CUDA (warp_cuda.cu) kernels, so the CPU tests check the arithmetic the
// GPU runs. Spec: beingh0/ops/warp.py (the float64 reference); ABI: csrc/README.md, "Op family warp".
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/status.h"

#if defined(__CUDACC__)
#define BH0_WARP_HD __host__ __device__ __forceinline__
#else
#define BH0_WARP_HD inline
#endif

namespace bh0 {
namespace warp {

using ::bh0::Status;

// Output element types: the shared codes of common/status.h (uint8: nearest copies of masks, labels).
enum OutType : int { kOutF32 = kF32, kOutF16 = kF16, kOutBF16 = kBF16, kOutU8 = kU8 };
enum Mode : int { kBilinear = 0, kNearest = 1 };
enum DistModel : int { kNoDist = 0, kRadTan = 1, kFisheye = 2 };
constexpr int kNumParams = 16;  // per image, float32 (layout below and in csrc/README.md)
constexpr int kMaxChannels = 4;

// Per-image parameters, float32, row b of a (B, 16) array:
//   [0..5]   m00 m01 m02 m10 m11 m12: output pixel (x, y, 1) -> undistorted source pixel, or, when a
//            distortion model is on, -> normalised ray (K_src^-1 folded in)
//   [6..10]  fx skew cx fy cy of K_src (used only with a distortion model)
//   [11..15] k0..k4 distortion coefficients (radtan: k1 k2 p1 p2 k3; fisheye: k1 k2 k3 k4 -)
struct WarpArgs {
  const uint8_t* src = nullptr;  // images, uint8, channels last: pixel (b, y, x) channel c at
                                 // src[b*stride_b + y*stride_h + x*C + c]
  int64_t B = 0, H = 0, W = 0, C = 0;
  int64_t stride_b = 0, stride_h = 0;  // in bytes (= elements)
  const float* params = nullptr;       // (B, 16): host memory for the CPU, device memory for CUDA
  int mode = kBilinear;
  int dist_model = kNoDist;
  // Per-channel constants, host memory for both CPU and CUDA (read before launch):
  const float* scale = nullptr;  // (C,) out = value * scale + bias (value in 0..255)
  const float* bias = nullptr;   // (C,)
  const float* fill = nullptr;   // (C,) value of taps outside the image, 0..255
  int64_t h = 0, w = 0;          // output size
  int out_dtype = kOutF32;
  void* out = nullptr;       // (B, C, h, w) C-contiguous, out_dtype
  uint8_t* mask = nullptr;   // (B, h, w) bytes 0/1 (a torch.bool tensor), or nullptr: not written
};

// Shape/pointer/code checks shared by the CPU and CUDA launchers (host only; in warp_cpu.cpp).
Status validate(const char* op, const WarpArgs& a);

Status warp_align_cpu(const WarpArgs& a);
// CUDA (warp_cuda.cu; linked only with BEINGH0_HAVE_CUDA). `stream` is a cudaStream_t.
Status warp_align_cuda(const WarpArgs& a, void* stream);

// ------------------------------------------------------------------------------------------------
// shared per-pixel math (host and device)

// Lens model on the normalised ray (u, v) -> distorted normalised point, then K_src -> pixels.
// radtan: OpenCV's cv::projectPoints model; fisheye: cv::fisheye (equidistant, theta = atan(r)).
template <int DIST>
BH0_WARP_HD void distort_project(const float* p, float u, float v, float& sx, float& sy) {
  float xd, yd;
  if (DIST == kRadTan) {
    const float r2 = u * u + v * v;
    const float radial = 1.f + r2 * (p[11] + r2 * (p[12] + r2 * p[15]));
    xd = u * radial + 2.f * p[13] * u * v + p[14] * (r2 + 2.f * u * u);
    yd = v * radial + p[13] * (r2 + 2.f * v * v) + 2.f * p[14] * u * v;
  } else {
    const float r = sqrtf(u * u + v * v);
    const float th = atanf(r);
    const float t2 = th * th;
    const float thd = th * (1.f + t2 * (p[11] + t2 * (p[12] + t2 * (p[13] + t2 * p[14]))));
    const float s = r > 1e-8f ? thd / r : 1.f;  // theta_d / r -> 1 as r -> 0
    xd = u * s;
    yd = v * s;
  }
  sx = p[6] * xd + p[7] * yd + p[8];
  sy = p[9] * yd + p[10];
}

// Keeps far-away (or non-finite) sample points from overflowing the int conversion; every tap of a
// point clamped this way is outside the image either way, so the result does not change.
BH0_WARP_HD float clamp_coord(float s, float n) { return fminf(fmaxf(s, -4.f), n + 4.f); }

BH0_WARP_HD bool in_footprint(float sx, float sy, float W, float H) {
  return sx >= -0.5f && sx < W - 0.5f && sy >= -0.5f && sy < H - 0.5f;
}

// float -> bfloat16 / float16 bits, round to nearest even (NaN stays NaN). Host code; the CUDA
// kernels use the intrinsics (same rounding).
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

inline uint16_t float_to_f16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);    // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);   // >= 65520 rounds to inf
  if (ax < 0x38800000u) {                                                // subnormal or zero half
    if (ax < 0x33000000u) return static_cast<uint16_t>(sign);            // < 2^-25: +-0
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;                                       // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ax - 0x38000000u;  // rebias exponent 127 -> 15 (in place)
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

}  // namespace warp
}  // namespace bh0
