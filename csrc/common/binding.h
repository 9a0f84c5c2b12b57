// Registration of pybind11 bindings per op family.
//
// Each op family keeps its exports in csrc/<op>/<op>_bindings.cpp and registers them with
//
//   BH0_BINDINGS(grq) { m.def("grq_encode_cpu", ...); }
//
// csrc/bindings.cpp runs every registered function (in name order) when `beingh0._C` is imported,
// so adding an op family touches neither bindings.cpp nor CMakeLists.txt (which globs csrc/*/).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/status.h"

namespace bh0 {

using BindFn = void (*)(pybind11::module_&);

// Adds `fn` to the registry; returns a dummy so it can initialise a static.
int add_bindings(const char* name, BindFn fn);
// Runs every registered function on `m`, sorted by name.
void run_bindings(pybind11::module_& m);

template <class P>
inline P ptr(uintptr_t x) {
  return reinterpret_cast<P>(x);
}

inline void raise_if_failed(const Status& st) {
  if (st.ok()) return;
  if (st.code == Code::kValueError) throw pybind11::value_error(st.message);
  throw std::runtime_error(st.message);
}

[[noreturn]] inline void no_cuda(const char* op) {
  throw std::runtime_error(std::string(op) +
                           ": beingh0 was built without CUDA (no nvcc at build time). Rebuild with the CUDA "
                           "toolkit installed: pip install . -C cmake.define.BEINGH0_WITH_CUDA=ON");
}

}  // namespace bh0

#define BH0_BINDINGS(name)                                                                  \
  static void bh0_bind_##name(pybind11::module_& m);                                        \
  static const int bh0_registered_##name = ::bh0::add_bindings(#name, &bh0_bind_##name);    \
  static void bh0_bind_##name(pybind11::module_& m)
