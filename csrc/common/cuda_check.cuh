// Host-side checks shared by every CUDA launcher (include from .cu files only).
#pragma once

#include <cuda_runtime.h>

#include <initializer_list>
#include <string>
#include <utility>

#include "common/status.h"

namespace bh0 {

// RuntimeError status naming the op, the failed call and the CUDA error.
inline Status cuda_error(const char* op, const char* what, cudaError_t e) {
  return Status::runtime_error(std::string(op) + ": " + what + " failed: " + cudaGetErrorName(e) + " (" +
                               cudaGetErrorString(e) + ")");
}

// Every non-null pointer must be device (or managed) memory of the current device; ValueError otherwise.
inline Status check_device_pointers(const char* op, std::initializer_list<std::pair<const void*, const char*>> ptrs) {
  int dev = -1;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_error(op, "cudaGetDevice", e);
  }
  for (const auto& pn : ptrs) {
    if (pn.first == nullptr) continue;
    cudaPointerAttributes attr;
    e = cudaPointerGetAttributes(&attr, pn.first);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return Status::value_error(std::string(op) + ": argument " + pn.second + " is not a CUDA pointer (" +
                                 cudaGetErrorString(e) + ")");
    }
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
      return Status::value_error(std::string(op) + ": argument " + pn.second +
                                 " is not device memory; move the tensor to the GPU");
    if (attr.device != dev)
      return Status::value_error(std::string(op) + ": argument " + pn.second + " lives on cuda:" +
                                 std::to_string(attr.device) + " but the current device is cuda:" +
                                 std::to_string(dev) + "; call under torch.cuda.device(tensor.device)");
  }
  return {};
}

}  // namespace bh0
