// grq_encode on CPU: a register-blocked GEMM with the argmin fused into it.
//
// Work split: OpenMP over (panel of kPanel input rows, group) items (dynamic schedule). An item runs
// all L layers: its residuals (kPanel x Dg floats) stay in L1/L2 from the first layer to the last.
// The codebook is packed once per call (in parallel), or once for many calls by the caller
// (``GrqArgs::packed``; beingh0.ops.grq.prepare_codebooks), which matters for small batches.
//
// Per (panel, group, layer) the code search is S = R C^T (kPanel x K) with the argmin taken on the
// fly: the codebook of the layer is pre-packed into tiles of kNR codes, each tile contiguous as
// (Dg, kNR) (32 KB for Dg = 256 with AVX-512, so it sits in L1 while every micro-tile of the panel
// uses it). A micro-tile is kMR rows x kNR codes of float32 accumulators held in vector registers
// (6 x 2 zmm with AVX-512): per channel d, two vector loads of the tile, six broadcasts, twelve FMAs.
// After the channel loop each row's scores ||c||^2 - 2 r.c update a per-lane running minimum (and
// its code index) with a strict "<"; lanes see codes in increasing order, so the final reduction
// over lanes (smallest score, then smallest index) gives the lowest index among exact ties, as the
// reference does. Padded codes (K rounded up to kNR) score +inf and never win.
//
// FLOPs 2 N G L K Dg; bytes: x once, codes and quantized once, the packed codebook once per panel
// per layer from L2/L3. Nothing of size N x K is ever stored.
//
// Vector code is written with GCC/Clang vector extensions: the same source compiles to AVX-512,
// AVX2 or SSE/NEON depending on the target (-march=native by default, see CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#ifdef BEINGH0_HAVE_OPENMP
#include <omp.h>
#endif

#include "grq/grq.h"

namespace bh0 {
namespace grq {

Status validate(const char* op, const GrqArgs& a) {
  const std::string p = std::string(op) + ": ";
  if (a.N < 0) return Status::value_error(p + "N must be >= 0, got " + std::to_string(a.N));
  if (a.G < 1 || a.L < 1 || a.K < 1 || a.Dg < 1)
    return Status::value_error(p + "codebooks must be non-empty (G, L, K, Dg >= 1), got (" + std::to_string(a.G) +
                               ", " + std::to_string(a.L) + ", " + std::to_string(a.K) + ", " +
                               std::to_string(a.Dg) + ")");
  if (a.K > (int64_t{1} << 31) - 1) return Status::value_error(p + "K must be < 2^31");
  if (a.x_stride < 0) return Status::value_error(p + "x_stride must be >= 0, got " + std::to_string(a.x_stride));
  // x_stride 0: every row is the same vector (a broadcast, e.g. torch's expand); only the kernels'
  // reads touch x, so that is safe. Overlapping rows (0 < x_stride < G*Dg) are refused.
  if (a.N > 0 && a.x_stride != 0 && a.x_stride < a.G * a.Dg)
    return Status::value_error(p + "x_stride " + std::to_string(a.x_stride) + " is smaller than a row (G*Dg = " +
                               std::to_string(a.G * a.Dg) + ") and not 0 (a broadcast row)");
  if (a.tile_rows != 0 && a.tile_rows != 16 && a.tile_rows != 32 && a.tile_rows != 64)
    return Status::value_error(p + "tile_rows must be 0 (pick by N), 16, 32 or 64, got " + std::to_string(a.tile_rows));
  if (a.x_dtype != kF32 && a.x_dtype != kF16 && a.x_dtype != kBF16)
    return Status::value_error(p + "x_dtype must be float32, float16 or bfloat16 (codes 0, 2, 3), got " +
                               std::to_string(a.x_dtype));
  if (!a.codebooks || !a.code_norms) return Status::value_error(p + "codebooks and code_norms must not be null");
  if (a.N > 0 && (!a.x || !a.codes)) return Status::value_error(p + "x and codes must not be null");
  return Status{};
}

namespace {

#if defined(__AVX512F__)
constexpr int kVW = 16;
#elif defined(__AVX__)
constexpr int kVW = 8;
#else
constexpr int kVW = 4;
#endif
typedef float vf __attribute__((vector_size(kVW * 4)));
typedef int32_t vi __attribute__((vector_size(kVW * 4)));

constexpr int kMR = 6;           // rows per micro-tile
constexpr int kNV = 2;           // vectors per micro-tile row
constexpr int kNR = kNV * kVW;   // codes per micro-tile (and per packed tile)
constexpr int kPanel = 8 * kMR;  // rows per OpenMP work item

inline float bf16_to_float(uint16_t h) {
  const uint32_t x = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t x;
  if (e == 0) {
    if (m == 0) {
      x = sign;
    } else {  // subnormal half: normalise
      int shift = 0;
      uint32_t mm = m;
      while (!(mm & 0x400u)) {
        mm <<= 1;
        ++shift;
      }
      x = sign | ((113u - shift) << 23) | ((mm & 0x3ffu) << 13);
    }
  } else if (e == 31) {
    x = sign | 0x7f800000u | (m << 13);  // inf / NaN
  } else {
    x = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// Row n, channels [c0, c0 + Dg) of x, converted to float32.
void load_row(const GrqArgs& a, int64_t n, int64_t c0, float* dst) {
  const int64_t off = n * a.x_stride + c0;
  if (a.x_dtype == kF32) {
    std::memcpy(dst, static_cast<const float*>(a.x) + off, sizeof(float) * a.Dg);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(a.x) + off;
    if (a.x_dtype == kBF16)
      for (int64_t d = 0; d < a.Dg; ++d) dst[d] = bf16_to_float(s[d]);
    else
      for (int64_t d = 0; d < a.Dg; ++d) dst[d] = f16_to_float(s[d]);
  }
}

inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}

// acc[i][v] = sum_d R[i, d] * B[d, v*kVW : (v+1)*kVW] for one packed tile B (Dg, kNR).
inline void micro_tile(const float* __restrict R, int64_t Dg, const float* __restrict B, vf acc[kMR][kNV]) {
  for (int i = 0; i < kMR; ++i)
    for (int v = 0; v < kNV; ++v) acc[i][v] = vf{};
  const float* r0 = R;
  for (int64_t d = 0; d < Dg; ++d) {
    const vf b0 = vload(B + d * kNR), b1 = vload(B + d * kNR + kVW);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const float s = r0[i * Dg + d];
      acc[i][0] += s * b0;
      acc[i][1] += s * b1;
    }
  }
}

}  // namespace

int grq_cpu_tile_codes() { return kNR; }

Status grq_encode_cpu(const GrqArgs& a) {
  Status st = validate("grq_encode_cpu", a);
  if (!st.ok() || a.N == 0) return st;
  const int64_t G = a.G, L = a.L, K = a.K, Dg = a.Dg;
  const int64_t tiles = (K + kNR - 1) / kNR, Kp = tiles * kNR;

  // Every (g, l) codebook as `tiles` contiguous (Dg, kNR) blocks, padded codes zero vectors with
  // norm +inf: given by the caller (packed once for many calls), or packed here. std::vector<vf> is
  // aligned for vf (C++17 aligned new); the caller's buffer is read with unaligned loads.
  std::vector<vf> own;
  const float* packed = a.packed;
  if (!packed) {
    own.resize(static_cast<size_t>(G * L * tiles * Dg * kNV));
#pragma omp parallel for schedule(static)
    for (int64_t glt = 0; glt < G * L * tiles; ++glt) {
      const int64_t gl = glt / tiles, t = glt % tiles;
      const float* C = a.codebooks + gl * K * Dg;
      float* P = reinterpret_cast<float*>(own.data()) + glt * Dg * kNR;
      for (int64_t d = 0; d < Dg; ++d)
        for (int j = 0; j < kNR; ++j) {
          const int64_t k = t * kNR + j;
          P[d * kNR + j] = k < K ? C[k * Dg + d] : 0.f;
        }
    }
    packed = reinterpret_cast<const float*>(own.data());
  }
  std::vector<float> norms(static_cast<size_t>(G * L * Kp), std::numeric_limits<float>::infinity());
  for (int64_t gl = 0; gl < G * L; ++gl) std::memcpy(norms.data() + gl * Kp, a.code_norms + gl * K, sizeof(float) * K);

  // Work items: (panel of rows, group), so that small batches still use every thread.
  const int64_t panels = (a.N + kPanel - 1) / kPanel;
#pragma omp parallel
  {
    std::vector<float> R(static_cast<size_t>(kPanel * Dg)), Q(static_cast<size_t>(kPanel * Dg));
    alignas(64) float bestv[kPanel][kNR];
    alignas(64) int32_t bestk[kPanel][kNR];
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < panels * G; ++item) {
      const int64_t pidx = item / G, g = item % G;
      const int64_t n0 = pidx * kPanel, rows = std::min<int64_t>(kPanel, a.N - n0);
      const int64_t mrows = (rows + kMR - 1) / kMR * kMR;  // rows padded to whole micro-tiles
      for (int64_t i = 0; i < rows; ++i) load_row(a, n0 + i, g * Dg, R.data() + i * Dg);
      std::fill(R.begin() + rows * Dg, R.begin() + mrows * Dg, 0.f);
      if (a.quantized) std::fill(Q.begin(), Q.begin() + rows * Dg, 0.f);
      for (int64_t l = 0; l < L; ++l) {
        const int64_t gl = g * L + l;
        const float* P = packed + gl * tiles * Dg * kNR;
        const float* nrm = norms.data() + gl * Kp;
        for (int64_t i = 0; i < mrows; ++i)
          for (int j = 0; j < kNR; ++j) {
            bestv[i][j] = std::numeric_limits<float>::infinity();
            bestk[i][j] = 0;
          }
        for (int64_t t = 0; t < tiles; ++t) {
          const float* B = P + t * Dg * kNR;
          vi kv[kNV];
          for (int v = 0; v < kNV; ++v)
            for (int j = 0; j < kVW; ++j) kv[v][j] = static_cast<int32_t>(t * kNR + v * kVW + j);
          const vf n0v = vload(nrm + t * kNR), n1v = vload(nrm + t * kNR + kVW);
          for (int64_t i0 = 0; i0 < mrows; i0 += kMR) {
            vf acc[kMR][kNV];
            micro_tile(R.data() + i0 * Dg, Dg, B, acc);
            for (int i = 0; i < kMR; ++i) {
              const vf s[kNV] = {n0v - 2.f * acc[i][0], n1v - 2.f * acc[i][1]};
              for (int v = 0; v < kNV; ++v) {
                vf bv = vload(&bestv[i0 + i][v * kVW]);
                vi bk;
                std::memcpy(&bk, &bestk[i0 + i][v * kVW], sizeof(vi));
                const vi better = s[v] < bv;  // strict: an equal score later in k never replaces
                bv = better ? s[v] : bv;
                bk = better ? kv[v] : bk;
                std::memcpy(&bestv[i0 + i][v * kVW], &bv, sizeof(vf));
                std::memcpy(&bestk[i0 + i][v * kVW], &bk, sizeof(vi));
              }
            }
          }
        }
        for (int64_t i = 0; i < rows; ++i) {
          float bs = bestv[i][0];
          int32_t bk = bestk[i][0];
          for (int j = 1; j < kNR; ++j)
            if (bestv[i][j] < bs || (bestv[i][j] == bs && bestk[i][j] < bk)) {
              bs = bestv[i][j];
              bk = bestk[i][j];
            }
          a.codes[((n0 + i) * G + g) * L + l] = bk;
          const float* c = a.codebooks + (gl * K + bk) * Dg;
          float* r = R.data() + i * Dg;
          for (int64_t d = 0; d < Dg; ++d) r[d] -= c[d];
          if (a.quantized) {
            float* q = Q.data() + i * Dg;
            for (int64_t d = 0; d < Dg; ++d) q[d] += c[d];
          }
        }
      }
      if (a.quantized)
        for (int64_t i = 0; i < rows; ++i)
          std::memcpy(a.quantized + (n0 + i) * G * Dg + g * Dg, Q.data() + i * Dg, sizeof(float) * Dg);
    }
  }
  return Status{};
}

}  // namespace grq
}  // namespace bh0
