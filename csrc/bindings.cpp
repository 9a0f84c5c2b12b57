// Entry point of beingh0._C. Each op family registers its own exports from
// csrc/<op>/<op>_bindings.cpp with BH0_BINDINGS (common/binding.h); this file runs them and adds
// the module-wide queries. The ABI of every op is documented in csrc/README.md.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#ifdef BEINGH0_HAVE_OPENMP
#include <omp.h>
#endif

#include "common/binding.h"

namespace py = pybind11;

namespace bh0 {
namespace {
std::vector<std::pair<std::string, BindFn>>& registry() {
  static std::vector<std::pair<std::string, BindFn>> r;  // function-local: safe from init-order issues
  return r;
}
}  // namespace

int add_bindings(const char* name, BindFn fn) {
  registry().emplace_back(name, fn);
  return static_cast<int>(registry().size());
}

void run_bindings(py::module_& m) {
  auto r = registry();
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, fn] : r) fn(m);
}
}  // namespace bh0

PYBIND11_MODULE(_C, m) {
  m.doc() = "beingh0 compiled kernels (C++ CPU/OpenMP and CUDA); see csrc/README.md for the ABI";
  bh0::run_bindings(m);
  m.def("has_cuda", []() {
#ifdef BEINGH0_HAVE_CUDA
    return true;
#else
    return false;
#endif
  }, "True when the module was compiled with the CUDA kernels.");
  m.def("has_openmp", []() {
#ifdef BEINGH0_HAVE_OPENMP
    return true;
#else
    return false;
#endif
  }, "True when the CPU kernels were compiled with OpenMP.");
  m.def("num_threads", []() {
#ifdef BEINGH0_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }, "Threads the CPU kernels use (OpenMP max threads; 1 without OpenMP).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
#ifdef BEINGH0_HAVE_OPENMP
    omp_set_num_threads(n);
#endif
  }, py::arg("n"), "Set the number of OpenMP threads of the CPU kernels (no-op without OpenMP).");
}
