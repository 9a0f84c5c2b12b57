// Status and dtype codes shared by every op family in csrc/. No torch, no pybind11 here:
// kernels return a Status, the bindings turn it into a Python exception.
#pragma once

#include <string>
#include <utility>

namespace bh0 {

enum class Code { kOk = 0, kValueError, kRuntimeError };

struct Status {
  Code code = Code::kOk;
  std::string message;
  bool ok() const { return code == Code::kOk; }
  static Status value_error(std::string m) { return {Code::kValueError, std::move(m)}; }
  static Status runtime_error(std::string m) { return {Code::kRuntimeError, std::move(m)}; }
};

// Element types of tensors (the Python side passes these integers). THE table: beingh0/ops/_scaffold.py
// mirrors it as DTYPE_CODES (tests/ops/test_contract.py reads this file and compares). Each op
// accepts a subset (mano: F32/F64 on CPU, all four floats on CUDA; grq x: F32/F16/BF16; warp out:
// F32/F16/BF16/U8).
enum DType : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3, kU8 = 4 };

}  // namespace bh0
