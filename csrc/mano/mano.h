// Raw-pointer launchers of the MANO forward/backward kernels (no torch, no pybind11 here).
//
// Layouts and the ABI are documented in csrc/README.md; the math in mano_math.h. Every launcher
// validates its arguments first and returns a Status; mano_bindings.cpp turns a failed Status into a
// Python ValueError/RuntimeError. Nothing is written or launched when the Status is not ok.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace bh0 {
namespace mano {

using ::bh0::Code;
using ::bh0::Status;
using ::bh0::DType;
using ::bh0::kF32;
using ::bh0::kF64;
using ::bh0::kF16;
using ::bh0::kBF16;

// Everything both directions read. Pointers are addresses of C-contiguous buffers:
// per-sample tensors have the `dtype` element type, the model constants are float32
// (float64 when dtype == kF64) and tip_ids is int32.
struct ManoArgs {
  int dtype = kF32;
  const void* betas = nullptr;  // (betas_rows, S)
  int64_t betas_rows = 1;       // 1 (shared) or B
  const void* pose = nullptr;   // (B, 48)
  const void* trans = nullptr;  // (B, 3)
  const void* v_template = nullptr;     // (V, 3)
  const void* shapedirs_t = nullptr;    // (S, V*3)
  const void* posedirs_t = nullptr;     // (135, V*3)
  const void* j_template = nullptr;     // (16, 3)
  const void* j_shapedirs_t = nullptr;  // (S, 48)
  const void* weights = nullptr;        // (V, 16)
  const int32_t* tip_ids = nullptr;     // (5,)
  int64_t B = 0, V = 0, S = 0;
  int trans_mode = 0;  // 0: trans is the posed wrist (Being-H0); 1: added to the mesh (smplx)
};

struct ManoForwardOut {
  void* verts = nullptr;      // (B, V, 3) or nullptr (not written)
  void* keypoints = nullptr;  // (B, 21, 3), required
};

struct ManoBackwardIO {
  const void* grad_verts = nullptr;      // (B, V, 3) or nullptr (zero)
  const void* grad_keypoints = nullptr;  // (B, 21, 3) or nullptr (zero)
  void* grad_betas = nullptr;            // (betas_rows, S), summed over the batch when rows == 1
  void* grad_pose = nullptr;             // (B, 48)
  void* grad_trans = nullptr;            // (B, 3)
};

// Shape/pointer/dtype checks shared by the CPU and CUDA launchers (host only).
// `max_dtype` is kF64 for the CPU and kBF16 for CUDA.
Status validate(const char* op, const ManoArgs& a, int max_dtype);

// The backward's output pointers (shared by the CPU and CUDA entry points).
inline Status validate_backward_outputs(const char* op, const ManoArgs& a, const ManoBackwardIO& io) {
  if (io.grad_betas == nullptr && (a.B > 0 || a.betas_rows == 1))
    return Status::value_error(std::string(op) + ": argument grad_betas_out is a null pointer");
  if (a.B > 0 && (io.grad_pose == nullptr || io.grad_trans == nullptr))
    return Status::value_error(std::string(op) + ": argument " + (io.grad_pose ? "grad_trans_out" : "grad_pose_out") +
                               " is a null pointer");
  return {};
}

Status forward_cpu(const ManoArgs& a, const ManoForwardOut& out);
Status backward_cpu(const ManoArgs& a, const ManoBackwardIO& io);

// CUDA (mano_cuda_fwd.cu, mano_cuda_bwd.cu; only linked when BEINGH0_HAVE_CUDA is defined). `stream` is a cudaStream_t.
Status forward_cuda(const ManoArgs& a, const ManoForwardOut& out, void* stream);
Status backward_cuda(const ManoArgs& a, const ManoBackwardIO& io, void* stream);
int cuda_device_count();

}  // namespace mano
}  // namespace bh0
