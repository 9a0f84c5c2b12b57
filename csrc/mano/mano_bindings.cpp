// pybind11 exports of the MANO kernels (argument plumbing only; see csrc/README.md for the ABI).
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/binding.h"
#include "mano/mano.h"

namespace py = pybind11;
using bh0::no_cuda;
using bh0::ptr;
using bh0::raise_if_failed;
using bh0::mano::ManoArgs;
using bh0::mano::Status;

namespace {

ManoArgs make_args(int dtype, uintptr_t betas, int64_t betas_rows, uintptr_t pose, uintptr_t trans,
                   uintptr_t v_template, uintptr_t shapedirs_t, uintptr_t posedirs_t, uintptr_t j_template,
                   uintptr_t j_shapedirs_t, uintptr_t weights, uintptr_t tip_ids, int64_t B, int64_t V, int64_t S,
                   int trans_mode) {
  ManoArgs a;
  a.dtype = dtype;
  a.betas = ptr<const void*>(betas);
  a.betas_rows = betas_rows;
  a.pose = ptr<const void*>(pose);
  a.trans = ptr<const void*>(trans);
  a.v_template = ptr<const void*>(v_template);
  a.shapedirs_t = ptr<const void*>(shapedirs_t);
  a.posedirs_t = ptr<const void*>(posedirs_t);
  a.j_template = ptr<const void*>(j_template);
  a.j_shapedirs_t = ptr<const void*>(j_shapedirs_t);
  a.weights = ptr<const void*>(weights);
  a.tip_ids = ptr<const int32_t*>(tip_ids);
  a.B = B;
  a.V = V;
  a.S = S;
  a.trans_mode = trans_mode;
  return a;
}

// Shared argument lists, so the four mano entry points cannot drift apart.
#define BH0_MANO_CONST_ARGS                                                                                   \
  py::arg("betas"), py::arg("betas_rows"), py::arg("pose"), py::arg("trans"), py::arg("v_template"),          \
      py::arg("shapedirs_t"), py::arg("posedirs_t"), py::arg("j_template"), py::arg("j_shapedirs_t"),         \
      py::arg("weights"), py::arg("tip_ids"), py::arg("B"), py::arg("V"), py::arg("S"), py::arg("trans_mode")

}  // namespace

BH0_BINDINGS(mano) {
  m.def(
      "mano_forward_cpu",
      [](int dtype, uintptr_t betas, int64_t betas_rows, uintptr_t pose, uintptr_t trans, uintptr_t v_template,
         uintptr_t shapedirs_t, uintptr_t posedirs_t, uintptr_t j_template, uintptr_t j_shapedirs_t,
         uintptr_t weights, uintptr_t tip_ids, int64_t B, int64_t V, int64_t S, int trans_mode, uintptr_t verts_out,
         uintptr_t keypoints_out) {
        ManoArgs a = make_args(dtype, betas, betas_rows, pose, trans, v_template, shapedirs_t, posedirs_t,
                               j_template, j_shapedirs_t, weights, tip_ids, B, V, S, trans_mode);
        bh0::mano::ManoForwardOut out{ptr<void*>(verts_out), ptr<void*>(keypoints_out)};
        Status st;
        {
          py::gil_scoped_release nogil;
          st = bh0::mano::forward_cpu(a, out);
        }
        raise_if_failed(st);
      },
      py::arg("dtype"), BH0_MANO_CONST_ARGS, py::arg("verts_out"), py::arg("keypoints_out"),
      "MANO forward on CPU: writes verts (B, V, 3) (skipped when verts_out == 0) and keypoints (B, 21, 3).");

  m.def(
      "mano_backward_cpu",
      [](int dtype, uintptr_t grad_verts, uintptr_t grad_keypoints, uintptr_t betas, int64_t betas_rows, uintptr_t pose,
         uintptr_t trans, uintptr_t v_template, uintptr_t shapedirs_t, uintptr_t posedirs_t, uintptr_t j_template,
         uintptr_t j_shapedirs_t, uintptr_t weights, uintptr_t tip_ids, int64_t B, int64_t V, int64_t S,
         int trans_mode, uintptr_t grad_betas_out, uintptr_t grad_pose_out, uintptr_t grad_trans_out) {
        ManoArgs a = make_args(dtype, betas, betas_rows, pose, trans, v_template, shapedirs_t, posedirs_t,
                               j_template, j_shapedirs_t, weights, tip_ids, B, V, S, trans_mode);
        bh0::mano::ManoBackwardIO io{ptr<const void*>(grad_verts), ptr<const void*>(grad_keypoints),
                                     ptr<void*>(grad_betas_out), ptr<void*>(grad_pose_out), ptr<void*>(grad_trans_out)};
        Status st;
        {
          py::gil_scoped_release nogil;
          st = bh0::mano::backward_cpu(a, io);
        }
        raise_if_failed(st);
      },
      py::arg("dtype"), py::arg("grad_verts"), py::arg("grad_keypoints"), BH0_MANO_CONST_ARGS,
      py::arg("grad_betas_out"), py::arg("grad_pose_out"), py::arg("grad_trans_out"),
      "MANO backward on CPU: grad_betas (R, S) (batch sum when R == 1), grad_pose (B, 48), grad_trans (B, 3).");

  m.def(
      "mano_forward_cuda",
      [](int dtype, uintptr_t betas, int64_t betas_rows, uintptr_t pose, uintptr_t trans, uintptr_t v_template,
         uintptr_t shapedirs_t, uintptr_t posedirs_t, uintptr_t j_template, uintptr_t j_shapedirs_t,
         uintptr_t weights, uintptr_t tip_ids, int64_t B, int64_t V, int64_t S, int trans_mode, uintptr_t verts_out,
         uintptr_t keypoints_out, uintptr_t stream) {
#ifdef BEINGH0_HAVE_CUDA
        ManoArgs a = make_args(dtype, betas, betas_rows, pose, trans, v_template, shapedirs_t, posedirs_t,
                               j_template, j_shapedirs_t, weights, tip_ids, B, V, S, trans_mode);
        bh0::mano::ManoForwardOut out{ptr<void*>(verts_out), ptr<void*>(keypoints_out)};
        raise_if_failed(bh0::mano::forward_cuda(a, out, ptr<void*>(stream)));
#else
        no_cuda("mano_forward_cuda");
#endif
      },
      py::arg("dtype"), BH0_MANO_CONST_ARGS, py::arg("verts_out"), py::arg("keypoints_out"), py::arg("stream"),
      "MANO forward on CUDA (asynchronous on `stream`, a cudaStream_t as int).");

  m.def(
      "mano_backward_cuda",
      [](int dtype, uintptr_t grad_verts, uintptr_t grad_keypoints, uintptr_t betas, int64_t betas_rows, uintptr_t pose,
         uintptr_t trans, uintptr_t v_template, uintptr_t shapedirs_t, uintptr_t posedirs_t, uintptr_t j_template,
         uintptr_t j_shapedirs_t, uintptr_t weights, uintptr_t tip_ids, int64_t B, int64_t V, int64_t S,
         int trans_mode, uintptr_t grad_betas_out, uintptr_t grad_pose_out, uintptr_t grad_trans_out,
         uintptr_t stream) {
#ifdef BEINGH0_HAVE_CUDA
        ManoArgs a = make_args(dtype, betas, betas_rows, pose, trans, v_template, shapedirs_t, posedirs_t,
                               j_template, j_shapedirs_t, weights, tip_ids, B, V, S, trans_mode);
        bh0::mano::ManoBackwardIO io{ptr<const void*>(grad_verts), ptr<const void*>(grad_keypoints),
                                     ptr<void*>(grad_betas_out), ptr<void*>(grad_pose_out), ptr<void*>(grad_trans_out)};
        raise_if_failed(bh0::mano::backward_cuda(a, io, ptr<void*>(stream)));
#else
        no_cuda("mano_backward_cuda");
#endif
      },
      py::arg("dtype"), py::arg("grad_verts"), py::arg("grad_keypoints"), BH0_MANO_CONST_ARGS,
      py::arg("grad_betas_out"), py::arg("grad_pose_out"), py::arg("grad_trans_out"), py::arg("stream"),
      "MANO backward on CUDA (asynchronous on `stream`).");

  m.def("cuda_device_count", []() {
#ifdef BEINGH0_HAVE_CUDA
    return bh0::mano::cuda_device_count();
#else
    return 0;
#endif
  }, "Number of visible CUDA devices (0 without CUDA, driver or device; never raises).");
}
