// Placeholder for detectron2/layers/csrc/vision.cpp.
// The pb1-detectron2 sdist ships no C++ sources. This builds the detectron2._C module with
// only the two version queries detectron2 calls at import and in collect_env; compiled ops
// (rotated boxes, deformable conv) stay unavailable and ps_plugin reports that clearly.
#include <torch/extension.h>

namespace {

std::string get_compiler_version() {
#if defined(__GNUC__) && !defined(__clang__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__);
#elif defined(__clang__)
  return "clang " + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__);
#else
  return "unknown";
#endif
}

std::string get_cuda_version() {
  return "not compiled (ps_plugin placeholder extension)";
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("get_compiler_version", &get_compiler_version, "compiler that built this placeholder");
  m.def("get_cuda_version", &get_cuda_version, "CUDA version (none: placeholder build)");
}
