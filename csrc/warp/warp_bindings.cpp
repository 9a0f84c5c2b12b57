// pybind11 exports of warp_align (argument plumbing only; see csrc/README.md, "Op family warp").
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/binding.h"
#include "warp/warp.h"

namespace py = pybind11;
using bh0::no_cuda;
using bh0::ptr;
using bh0::raise_if_failed;
using bh0::warp::WarpArgs;

namespace {

WarpArgs make_args(uintptr_t src, int64_t B, int64_t H, int64_t W, int64_t C, int64_t stride_b, int64_t stride_h,
                   uintptr_t params, int mode, int dist_model, uintptr_t scale, uintptr_t bias, uintptr_t fill,
                   int64_t h, int64_t w, int out_dtype, uintptr_t out, uintptr_t mask) {
  WarpArgs a;
  a.src = ptr<const uint8_t*>(src);
  a.B = B;
  a.H = H;
  a.W = W;
  a.C = C;
  a.stride_b = stride_b;
  a.stride_h = stride_h;
  a.params = ptr<const float*>(params);
  a.mode = mode;
  a.dist_model = dist_model;
  a.scale = ptr<const float*>(scale);
  a.bias = ptr<const float*>(bias);
  a.fill = ptr<const float*>(fill);
  a.h = h;
  a.w = w;
  a.out_dtype = out_dtype;
  a.out = ptr<void*>(out);
  a.mask = ptr<uint8_t*>(mask);
  return a;
}

#define BH0_WARP_ARGS                                                                                              \
  py::arg("src"), py::arg("B"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("stride_b"), py::arg("stride_h"), \
      py::arg("params"), py::arg("mode"), py::arg("dist_model"), py::arg("scale"), py::arg("bias"), py::arg("fill"), \
      py::arg("h"), py::arg("w"), py::arg("out_dtype"), py::arg("out"), py::arg("mask")

}  // namespace

BH0_BINDINGS(warp) {
  m.def(
      "warp_align_cpu",
      [](uintptr_t src, int64_t B, int64_t H, int64_t W, int64_t C, int64_t stride_b, int64_t stride_h,
         uintptr_t params, int mode, int dist_model, uintptr_t scale, uintptr_t bias, uintptr_t fill, int64_t h,
         int64_t w, int out_dtype, uintptr_t out, uintptr_t mask) {
        WarpArgs a = make_args(src, B, H, W, C, stride_b, stride_h, params, mode, dist_model, scale, bias, fill, h, w,
                               out_dtype, out, mask);
        bh0::Status st;
        {
          py::gil_scoped_release nogil;
          st = bh0::warp::warp_align_cpu(a);
        }
        raise_if_failed(st);
      },
      BH0_WARP_ARGS,
      "warp_align on CPU: uint8 (B, H, W, C) -> (B, C, h, w) normalised, and the (B, h, w) mask (mask == 0: not written).");

  m.def(
      "warp_align_cuda",
      [](uintptr_t src, int64_t B, int64_t H, int64_t W, int64_t C, int64_t stride_b, int64_t stride_h,
         uintptr_t params, int mode, int dist_model, uintptr_t scale, uintptr_t bias, uintptr_t fill, int64_t h,
         int64_t w, int out_dtype, uintptr_t out, uintptr_t mask, uintptr_t stream) {
#ifdef BEINGH0_HAVE_CUDA
        WarpArgs a = make_args(src, B, H, W, C, stride_b, stride_h, params, mode, dist_model, scale, bias, fill, h, w,
                               out_dtype, out, mask);
        raise_if_failed(bh0::warp::warp_align_cuda(a, ptr<void*>(stream)));
#else
        no_cuda("warp_align_cuda");
#endif
      },
      BH0_WARP_ARGS, py::arg("stream"),
      "warp_align on CUDA (asynchronous on `stream`, a cudaStream_t as int); scale/bias/fill are host pointers.");
}
