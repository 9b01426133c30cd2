// Portable copy of the kernels: two-double GCC/Clang vectors, which become SSE2 on any
// x86-64 and NEON on arm64, with a multiply and an add where the CPU has no FMA guarantee.
#include <cstring>

#define KERNEL_NS lobrtrl_baseline
#define FMA_CHAINS 12
namespace KERNEL_NS {
struct VecTraits {
  typedef double reg __attribute__((vector_size(16)));
  static constexpr int W = 2, R = 4, CV = 3;
  static inline reg zero() { return reg{0.0, 0.0}; }
  static inline reg load(const double* p) {
    reg v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static inline void store(double* p, reg v) { std::memcpy(p, &v, sizeof v); }
  static inline reg set1(double x) { return reg{x, x}; }
  static inline reg fma(reg a, reg b, reg c) { return a * b + c; }
  static inline reg mul(reg a, reg b) { return a * b; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline reg sub(reg a, reg b) { return a - b; }
  static inline double hsum(reg v) { return v[0] + v[1]; }
};
}  // namespace KERNEL_NS
#include "kernel-impl.h"

namespace lobrtrl {
const KernelTable baselineTable{"baseline", lobrtrl_baseline::step, lobrtrl_baseline::sensitivityOnly, lobrtrl_baseline::fmaLoop, lobrtrl_baseline::adam};
}
