// Raw-pointer launchers of grq_encode (no torch, no pybind11 here). Spec: beingh0/ops/grq.py (the
// plain-torch reference); ABI: csrc/README.md, "Op family grq".
//
// For each input vector n and channel group g, an L-layer residual code search:
//
//   r = x[n, g*Dg : (g+1)*Dg]  (in float32)
//   for l in 0..L-1:  c = argmin_k ( ||C[g,l,k]||^2 - 2 <r, C[g,l,k]> )   (ties: lowest k)
//                     codes[n, g, l] = c;  q += C[g,l,c];  r -= C[g,l,c]
//
// ||r||^2 is the same for every k and is left out of the comparison. Nothing of size N x K is ever
// stored: the kernels keep a tile of residuals on chip and stream the codebook past it.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace bh0 {
namespace grq {

using ::bh0::Status;

struct GrqArgs {
  const void* x = nullptr;     // (N, G*Dg) in x_dtype (kF32, kF16 or kBF16 of common/status.h);
                               // row n starts at x + n * x_stride (elements), channels contiguous
  int64_t N = 0, G = 0, L = 0, K = 0, Dg = 0;
  int64_t x_stride = 0;        // elements between rows: >= G*Dg, or 0 (every row the same vector)
  int x_dtype = kF32;
  const float* codebooks = nullptr;  // (G, L, K, Dg) float32, C-contiguous
  const float* code_norms = nullptr; // (G, L, K) float32: ||C[g,l,k]||^2 (computed by the caller so
                                     // that every backend compares the same numbers)
  int64_t* codes = nullptr;    // (N, G, L) int64, C-contiguous
  float* quantized = nullptr;  // (N, G*Dg) float32, C-contiguous, or nullptr: not written
  // CPU only, optional: the codebooks already packed as the CPU kernel reads them, float32
  // (G, L, ceil(K / T), Dg, T) with T = grq_cpu_tile_codes() and codes past K zero (see
  // beingh0/ops/grq.py: prepare_codebooks). nullptr: the kernel packs them itself (every call).
  const float* packed = nullptr;
  // CUDA only, for tests: rows per block (16, 32 or 64) instead of the size-based choice (0).
  int tile_rows = 0;
};

// Codes per packed tile of the CPU kernel (2 x the SIMD width it was compiled for: 32 with AVX-512).
int grq_cpu_tile_codes();

// Shape/pointer/code checks shared by the CPU and CUDA launchers (host only; in grq_cpu.cpp).
Status validate(const char* op, const GrqArgs& a);

Status grq_encode_cpu(const GrqArgs& a);
// CUDA (grq_cuda.cu; linked only with BEINGH0_HAVE_CUDA). Pointers are device memory; `stream` is a
// cudaStream_t. Asynchronous on that stream.
Status grq_encode_cuda(const GrqArgs& a, void* stream);

}  // namespace grq
}  // namespace bh0
