// AVX2 + FMA copy of the kernels: compiled with -mavx2 -mfma (binding.gyp), called only when
// the CPU reports both. 16 ymm registers: a 4 x 3 tile is 12 accumulators, 3 loads, 1 broadcast.
#include <immintrin.h>

#define KERNEL_NS lobrtrl_avx2
// The tile shape; -DAVX2_ROWS=R -DAVX2_VECTORS=CV measures another (4 x 3 measured best here).
#ifndef AVX2_ROWS
#define AVX2_ROWS 4
#define AVX2_VECTORS 3
#endif
#define FMA_CHAINS 12
namespace KERNEL_NS {
struct VecTraits {
  using reg = __m256d;
  static constexpr int W = 4, R = AVX2_ROWS, CV = AVX2_VECTORS;
  static inline reg zero() { return _mm256_setzero_pd(); }
  static inline reg load(const double* p) { return _mm256_loadu_pd(p); }
  static inline void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static inline reg set1(double x) { return _mm256_set1_pd(x); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static inline reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static inline reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static inline reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  static inline double hsum(reg v) {
    const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
  }
};
}  // namespace KERNEL_NS
#include "kernel-impl.h"

namespace lobrtrl {
const KernelTable avx2Table{"avx2", lobrtrl_avx2::step, lobrtrl_avx2::sensitivityOnly, lobrtrl_avx2::fmaLoop, lobrtrl_avx2::adam};
}
