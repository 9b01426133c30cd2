// AVX-512F copy of the kernels: compiled with -mavx512f (binding.gyp), called only when the
// CPU reports it. 32 zmm registers: an 8 x 3 tile is 24 accumulators, 3 loads, 1 broadcast.
#include <immintrin.h>

#define KERNEL_NS lobrtrl_avx512
#define FMA_CHAINS 16
namespace KERNEL_NS {
struct VecTraits {
  using reg = __m512d;
  static constexpr int W = 8, R = 8, CV = 3;
  static inline reg zero() { return _mm512_setzero_pd(); }
  static inline reg load(const double* p) { return _mm512_loadu_pd(p); }
  static inline void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static inline reg set1(double x) { return _mm512_set1_pd(x); }
  static inline reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static inline reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static inline reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static inline reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  static inline double hsum(reg v) { return _mm512_reduce_add_pd(v); }
};
}  // namespace KERNEL_NS
#include "kernel-impl.h"

namespace lobrtrl {
const KernelTable avx512Table{"avx512", lobrtrl_avx512::step, lobrtrl_avx512::sensitivityOnly, lobrtrl_avx512::fmaLoop, lobrtrl_avx512::adam};
}
