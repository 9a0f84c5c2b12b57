// pybind11 exports of grq_encode (argument plumbing only; see csrc/README.md, "Op family grq").
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/binding.h"
#include "grq/grq.h"

namespace py = pybind11;
using bh0::no_cuda;
using bh0::ptr;
using bh0::raise_if_failed;
using bh0::grq::GrqArgs;

namespace {

GrqArgs make_args(uintptr_t x, int64_t N, int64_t G, int64_t L, int64_t K, int64_t Dg, int64_t x_stride, int x_dtype,
                  uintptr_t codebooks, uintptr_t code_norms, uintptr_t codes, uintptr_t quantized) {
  GrqArgs a;
  a.x = ptr<const void*>(x);
  a.N = N;
  a.G = G;
  a.L = L;
  a.K = K;
  a.Dg = Dg;
  a.x_stride = x_stride;
  a.x_dtype = x_dtype;
  a.codebooks = ptr<const float*>(codebooks);
  a.code_norms = ptr<const float*>(code_norms);
  a.codes = ptr<int64_t*>(codes);
  a.quantized = ptr<float*>(quantized);
  return a;
}

#define BH0_GRQ_ARGS                                                                                          \
  py::arg("x"), py::arg("N"), py::arg("G"), py::arg("L"), py::arg("K"), py::arg("Dg"), py::arg("x_stride"),   \
      py::arg("x_dtype"), py::arg("codebooks"), py::arg("code_norms"), py::arg("codes"), py::arg("quantized")

}  // namespace

BH0_BINDINGS(grq) {
  m.def(
      "grq_encode_cpu",
      [](uintptr_t x, int64_t N, int64_t G, int64_t L, int64_t K, int64_t Dg, int64_t x_stride, int x_dtype,
         uintptr_t codebooks, uintptr_t code_norms, uintptr_t codes, uintptr_t quantized, uintptr_t packed) {
        GrqArgs a = make_args(x, N, G, L, K, Dg, x_stride, x_dtype, codebooks, code_norms, codes, quantized);
        a.packed = ptr<const float*>(packed);
        bh0::Status st;
        {
          py::gil_scoped_release nogil;
          st = bh0::grq::grq_encode_cpu(a);
        }
        raise_if_failed(st);
      },
      BH0_GRQ_ARGS, py::arg("packed") = 0,
      "grq_encode on CPU: x (N, G*Dg) -> codes (N, G, L) int64 and, unless quantized == 0, the (N, G*Dg) float32 sum "
      "of the chosen codes. packed: the codebooks pre-packed (G, L, ceil(K/T), Dg, T), T = grq_cpu_tile_codes(), "
      "or 0 (packed per call).");
  m.def("grq_cpu_tile_codes", &bh0::grq::grq_cpu_tile_codes,
        "Codes per packed codebook tile of the CPU kernel (2 x its SIMD width in floats).");

  m.def(
      "grq_encode_cuda",
      [](uintptr_t x, int64_t N, int64_t G, int64_t L, int64_t K, int64_t Dg, int64_t x_stride, int x_dtype,
         uintptr_t codebooks, uintptr_t code_norms, uintptr_t codes, uintptr_t quantized, uintptr_t stream,
         int tile_rows) {
#ifdef BEINGH0_HAVE_CUDA
        GrqArgs a = make_args(x, N, G, L, K, Dg, x_stride, x_dtype, codebooks, code_norms, codes, quantized);
        a.tile_rows = tile_rows;
        raise_if_failed(bh0::grq::grq_encode_cuda(a, ptr<void*>(stream)));
#else
        (void)tile_rows;
        no_cuda("grq_encode_cuda");
#endif
      },
      BH0_GRQ_ARGS, py::arg("stream"), py::arg("tile_rows") = 0,
      "grq_encode on CUDA (asynchronous on `stream`, a cudaStream_t as int); all pointers are device memory. "
      "tile_rows: 0 picks the rows per block by N and the device; 16, 32 or 64 forces one (tests).");
}
