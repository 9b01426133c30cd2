// The RTRL step written once over a vector "traits" type, included by each isa-*.cc inside
// its own namespace (KERNEL_NS) and compiled there with that instruction set's flags, so the
// AVX-512, AVX2+FMA and baseline copies never meet at link time.
//
// Traits V provide: reg (a vector of W doubles), W, R and CV (the register tile: R output
// rows by CV vectors of columns), zero, load, store (unaligned), set1, fma(a, b, c) = a b + c,
// mul, add, sub, hsum.
//
// Sensitivity S_t = diag(1 - h_t^2)(W S_{t-1} + I_t), N x P row-major, P = N^2 + N d + N.
// The columns are walked in strips of CV * W; within a strip every block of R output rows
// keeps its R x CV accumulators in registers across the whole inner loop over the N source
// rows (one load of S_{t-1} feeds R fused multiply-adds, one broadcast of W feeds CV). The
// strip of S_{t-1} (N x CV W doubles) stays in L1 across the row blocks. The tile's epilogue
// adds I_t (only where the tile meets a row's own W, U or b block) and scales by 1 - h^2
// before the single store; once a strip is complete for all N rows, its projection
// s V[c,:] S_t is formed while the strip is still in cache.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel.h"

#ifndef PACK_ABOVE_ROWS
#define PACK_ABOVE_ROWS 16
#endif

namespace KERNEL_NS {

#include "gradient-norm.h"

using lobrtrl::StepArgs;

struct ScalarTraits {
  using reg = double;
  static constexpr int W = 1;
  static inline reg zero() { return 0.0; }
  static inline reg load(const double* p) { return *p; }
  static inline void store(double* p, reg v) { *p = v; }
  static inline reg set1(double x) { return x; }
  static inline reg fma(reg a, reg b, reg c) { return a * b + c; }
  static inline reg mul(reg a, reg b) { return a * b; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline reg sub(reg a, reg b) { return a - b; }
  static inline double hsum(reg v) { return v; }
};

struct Shape {
  int n, d, p;
  const double* w;  // W, N x N, at params[0]
  const double* hPrev;
  const double* x;
  const double* slope;  // 1 - h_t^2
  const double* sPrev;
  double* sNext;
};

/** I_t[row, j..j+width) into out: the three ranges where it is not zero copied, the rest 0.0. */
static inline void immediateColumns(const Shape& c, int row, int j, int width, double* out) {
  for (int i = 0; i < width; ++i) out[i] = 0.0;
  const int end = j + width;
  const int wStart = row * c.n;
  for (int col = std::max(j, wStart), last = std::min(end, wStart + c.n); col < last; ++col) out[col - j] = c.hPrev[col - wStart];
  const int uStart = c.n * c.n + row * c.d;
  for (int col = std::max(j, uStart), last = std::min(end, uStart + c.d); col < last; ++col) out[col - j] = c.x[col - uStart];
  const int b = c.n * c.n + c.n * c.d + row;
  if (j <= b && b < end) out[b - j] = 1.0;
}

/** Whether columns [j, j + width) of `row` meet any non-zero of I_t. */
static inline bool touchesImmediate(const Shape& c, int row, int j, int width) {
  const int end = j + width;
  const int wStart = row * c.n;
  if (j < wStart + c.n && end > wStart) return true;
  const int uStart = c.n * c.n + row * c.d;
  if (j < uStart + c.d && end > uStart) return true;
  const int b = c.n * c.n + c.n * c.d + row;
  return j <= b && b < end;
}

struct Projection {
  int classes;
  const double* scaledV;  // s V, C x N
  double* rows;           // C x P; null when no projection is wanted
  double* strip;          // scratch: the strip's finished S_t columns, packed N x (CV W)
};

/**
 * Rows k..k+R-1 of one column strip whose S_{t-1} columns were packed contiguously
 * (`packed`, N x CV*W), so the inner loop walks one dense block instead of N rows P apart
 * (at N = 64 those are 64 pages, more than the first-level TLB holds). Returns the sum of
 * v * 0 over the stored values: 0 when all are finite.
 */
template <class V, int R, int CV>
static inline typename V::reg tile(const Shape& c, const Projection& proj, const double* source,
                                                                  int stride, int k, int j) {
  constexpr int width = CV * V::W;
  typename V::reg acc[R][CV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) acc[r][v] = V::zero();
  const int n = c.n, p = c.p;
  const double* wRows = c.w + static_cast<int64_t>(k) * n;
  for (int m = 0; m < n; ++m) {
    typename V::reg s[CV];
    const double* srcRow = source + static_cast<int64_t>(m) * stride;
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) s[v] = V::load(srcRow + v * V::W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const typename V::reg weight = V::set1(wRows[r * n + m]);
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) acc[r][v] = V::fma(weight, s[v], acc[r][v]);
    }
  }
  // One finiteness accumulator per column vector, so the checks form CV short chains.
  typename V::reg check[CV];
#pragma GCC unroll 8
  for (int v = 0; v < CV; ++v) check[v] = V::zero();
  // Rows k..k+R-1 have I_t only in W rows k..k+R-1, U rows k..k+R-1 and b[k..k+R-1]: three
  // ranges, so one test tells whether any row of the tile needs the slow epilogue.
  const int end = j + width;
  const int uBase = n * n, bBase = n * n + n * c.d;
  const bool anyImmediate = (j < (k + R) * n && end > k * n) || (j < uBase + (k + R) * c.d && end > uBase + k * c.d) ||
                            (j < bBase + k + R && end > bBase + k);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const int row = k + r;
    double* out = c.sNext + static_cast<int64_t>(row) * p + j;
    typename V::reg value[CV];
    if (anyImmediate && touchesImmediate(c, row, j, width)) {
      // (W S + I) first, then the scaling: the same order as the TypeScript kernel. I_t's
      // columns of this row are laid out once (zero elsewhere, which adds exactly 0.0 as the
      // scalar path did) so the sum and the scaling stay whole vectors.
      alignas(64) double imm[width];
      immediateColumns(c, row, j, width, imm);
      const typename V::reg slope = V::set1(c.slope[row]);
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) value[v] = V::mul(V::add(acc[r][v], V::load(imm + v * V::W)), slope);
    } else {
      const typename V::reg slope = V::set1(c.slope[row]);
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) value[v] = V::mul(acc[r][v], slope);
    }
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) {
      V::store(out + v * V::W, value[v]);
      // value - value is 0 for a finite value and NaN otherwise; a subtraction and an addition
      // run beside the multiply-adds (other ports), where value * 0 + check took one of their slots.
      check[v] = V::add(check[v], V::sub(value[v], value[v]));
    }
    // A packed copy of the finished row for the strip's projection, read back from L1.
    if (proj.rows) {
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) V::store(proj.strip + row * width + v * V::W, value[v]);
    }
  }
#pragma GCC unroll 8
  for (int v = 1; v < CV; ++v) check[0] = V::add(check[0], check[v]);
  return check[0];
}

/**
 * rows[c, j..j+width) = sum_k (s V[c,k]) S_t[k, j..] for G classes from `first`, over the
 * strip's packed S_t: G x CV accumulators, each S_t load feeding G fused multiply-adds.
 */
template <class V, int CV, int G>
static inline void projectClasses(const Shape& c, const Projection& proj, int first, int j) {
  constexpr int width = CV * V::W;
  typename V::reg acc[G][CV];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) acc[g][v] = V::zero();
  for (int k = 0; k < c.n; ++k) {
    typename V::reg s[CV];
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) s[v] = V::load(proj.strip + k * width + v * V::W);
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const typename V::reg weight = V::set1(proj.scaledV[(first + g) * c.n + k]);
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) acc[g][v] = V::fma(weight, s[v], acc[g][v]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) V::store(proj.rows + static_cast<int64_t>(first + g) * c.p + j + v * V::W, acc[g][v]);
}

template <class V, int CV>
static inline void projectStrip(const Shape& c, const Projection& proj, int j) {
  int cls = 0;
  for (; cls + 3 <= proj.classes; cls += 3) projectClasses<V, CV, 3>(c, proj, cls, j);
  if (proj.classes - cls == 2) projectClasses<V, CV, 2>(c, proj, cls, j);
  else if (proj.classes - cls == 1) projectClasses<V, CV, 1>(c, proj, cls, j);
}

constexpr int kPackAboveRows = PACK_ABOVE_ROWS;

/**
 * One column strip: pack its S_{t-1} columns (asking for the next strip's meanwhile, which no
 * hardware prefetcher would guess), every row block, the last N mod R rows in one smaller
 * tile, then the strip's projection.
 */
template <class V, int R, int CV>
static inline double strip(const Shape& c, const Projection& proj, double* packed, int j) {
  constexpr int width = CV * V::W;
  // Up to kPackAboveRows rows the strip's rows are few enough streams for the hardware
  // prefetcher and the TLB, and copying them costs more than it saves (a third of the step at N = 16).
  const bool pack = c.n > kPackAboveRows;
  const double* source = pack ? packed : c.sPrev + j;
  const int stride = pack ? width : c.p;
  const bool prefetch = j + 2 * width <= c.p;
  for (int m = 0; pack && m < c.n; ++m) {
    const double* from = c.sPrev + static_cast<int64_t>(m) * c.p + j;
    if (prefetch) {
      __builtin_prefetch(from + width);
      __builtin_prefetch(from + width + 8);
      __builtin_prefetch(from + width + 16);
    }
    std::memcpy(packed + m * width, from, sizeof(double) * width);
  }
  typename V::reg check = V::zero();
  int k = 0;
  for (; k + R <= c.n; k += R) check = V::add(check, tile<V, R, CV>(c, proj, source, stride, k, j));
  switch (c.n - k) {
    case 0: break;
    case 1: check = V::add(check, tile<V, 1, CV>(c, proj, source, stride, k, j)); break;
    case 2: if constexpr (R > 2) check = V::add(check, tile<V, 2, CV>(c, proj, source, stride, k, j)); break;
    case 3: if constexpr (R > 3) check = V::add(check, tile<V, 3, CV>(c, proj, source, stride, k, j)); break;
    case 4: if constexpr (R > 4) check = V::add(check, tile<V, 4, CV>(c, proj, source, stride, k, j)); break;
    case 5: if constexpr (R > 5) check = V::add(check, tile<V, 5, CV>(c, proj, source, stride, k, j)); break;
    case 6: if constexpr (R > 6) check = V::add(check, tile<V, 6, CV>(c, proj, source, stride, k, j)); break;
    case 7: if constexpr (R > 7) check = V::add(check, tile<V, 7, CV>(c, proj, source, stride, k, j)); break;
    default: break;
  }
  if (proj.rows) projectStrip<V, CV>(c, proj, j);
  return V::hsum(check);
}

/** Widest strip of any instruction set: sizes the packing scratch (lobrtrl::scratchLength). */
static_assert(VecTraits::CV * VecTraits::W <= lobrtrl::kMaxStripWidth, "strip wider than the scratch");

/** A run of whole strips for one task of a parallel step, on that thread's own packing scratch. */
struct StripRun {
  const Shape* shape;
  Projection proj;
  int stripsPerTask;
  int strips;
  double* checks;  // one per task
};

template <class V>
static void stripRunTask(void* context, int task, int /*worker*/) {
  const StripRun& run = *static_cast<const StripRun*>(context);
  constexpr int wide = V::CV * V::W;
  // Each pool thread keeps its own packing and projection scratch; it grows once, then stays.
  thread_local std::vector<double> local;
  const size_t half = static_cast<size_t>(run.shape->n) * lobrtrl::kMaxStripWidth;
  if (local.size() < 2 * half) local.resize(2 * half);
  Projection proj = run.proj;
  if (proj.rows) proj.strip = local.data() + half;
  double check = 0;
  const int last = std::min(run.strips, (task + 1) * run.stripsPerTask);
  for (int s = task * run.stripsPerTask; s < last; ++s) check += strip<V, V::R, V::CV>(*run.shape, proj, local.data(), s * wide);
  run.checks[task] = check;
}

/**
 * The whole sensitivity update (and projection when proj.rows is set); true when S_t is finite.
 * A large step spreads its whole strips over the pool (parallel.cc); every column is computed
 * by the same code either way, so the result does not depend on the thread count.
 */
template <class V>
static bool sensitivityAndProjection(const Shape& c, const Projection& proj, double* packed) {
  constexpr int wide = V::CV * V::W;
  double check = 0;
  int j = 0;
  const int strips = c.p / wide;
  const int threads = lobrtrl::parallelThreads();
  if (threads > 1 && static_cast<int64_t>(c.n) * c.n * c.p >= lobrtrl::kParallelMinMacs && strips >= 2 * threads) {
    // A few tasks per thread, so a thread that started late still gets an even share.
    const int wanted = std::min(strips, 4 * threads);
    const int stripsPerTask = (strips + wanted - 1) / wanted;
    const int tasks = (strips + stripsPerTask - 1) / stripsPerTask;
    thread_local std::vector<double> checks;
    if (static_cast<int>(checks.size()) < tasks) checks.resize(tasks);
    StripRun run{&c, proj, stripsPerTask, strips, checks.data()};
    lobrtrl::parallelFor(tasks, &stripRunTask<V>, &run);
    for (int task = 0; task < tasks; ++task) check += checks[task];
    j = strips * wide;
  }
  for (; j + wide <= c.p; j += wide) check += strip<V, V::R, V::CV>(c, proj, packed, j);
  for (; j + V::W <= c.p; j += V::W) check += strip<V, V::R, 1>(c, proj, packed, j);
  for (; j < c.p; ++j) check += strip<ScalarTraits, 4, 1>(c, proj, packed, j);
  return check == 0;
}

static void computeSlopes(int n, const double* h, double* slope) {
  for (int i = 0; i < n; ++i) slope[i] = 1.0 - h[i] * h[i];
}

static void sensitivityOnly(int n, int d, const double* params, const double* hPrev, const double* x,
                            const double* h, const double* sPrev, double* sNext, double* scratch) {
  double* slope = scratch;
  computeSlopes(n, h, slope);
  const Shape shape{n, d, n * n + n * d + n, params, hPrev, x, slope, sPrev, sNext};
  sensitivityAndProjection<VecTraits>(shape, Projection{0, nullptr, nullptr, nullptr}, scratch + n);
}

static bool step(const StepArgs& a) {
  const int n = a.n, d = a.d, classes = a.classes;
  const int p = n * n + n * d + n;
  const double* params = a.params;
  const double* u = params + n * n;
  const double* b = params + n * n + n * d;
  // h_t = tanh(W h_{t-1} + U x_t + b), summed in the TypeScript kernel's order.
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    double sum = b[i];
    const double* wRow = params + i * n;
    for (int j = 0; j < n; ++j) sum += wRow[j] * a.hPrev[j];
    const double* uRow = u + i * d;
    for (int j = 0; j < d; ++j) sum += uRow[j] * a.x[j];
    const double value = std::tanh(sum);
    a.h[i] = value;
    if (value - value != 0) finite = false;
  }
  // Scratch layout (lobrtrl::scratchLength): slopes N | packed S_{t-1} strip N x strip | s V C x N | packed S_t strip N x strip.
  double* slope = a.scratch;
  double* packed = slope + n;
  double* scaledV = packed + n * lobrtrl::kMaxStripWidth;
  double* projectionStrip = scaledV + classes * n;
  computeSlopes(n, a.h, slope);
  for (int i = 0; i < classes * n; ++i) scaledV[i] = a.scale * params[a.vOffset + i];
  const Shape shape{n, d, p, params, a.hPrev, a.x, slope, a.sPrev, a.s};
  const Projection projection{classes, scaledV, a.rows, projectionStrip};
  if (!sensitivityAndProjection<VecTraits>(shape, projection, packed)) finite = false;
  const int64_t sLength = static_cast<int64_t>(n) * p;
  const int64_t rowsLength = static_cast<int64_t>(classes) * p;
  if (!finite) {
    // Only non-finite parameters get here; the state starts afresh, as in rtrl.ts.
    std::memset(a.h, 0, sizeof(double) * n);
    std::memset(a.s, 0, sizeof(double) * sLength);
    std::memset(a.rows, 0, sizeof(double) * rowsLength);
  }

  // probs = softmax(s V h + c + offsets), max subtracted, in the TypeScript kernel's order.
  const double* vMat = params + a.vOffset;
  const double* cBias = vMat + classes * n;
  double max = -INFINITY;
  for (int cls = 0; cls < classes; ++cls) {
    double z = 0;
    for (int k = 0; k < n; ++k) z += vMat[cls * n + k] * a.h[k];
    z = a.scale * z + cBias[cls];
    if (a.logitOffsets) z += a.logitOffsets[cls];
    a.probs[cls] = z;
    if (z > max) max = z;
  }
  double sum = 0;
  for (int cls = 0; cls < classes; ++cls) {
    const double e = std::exp(a.probs[cls] - max);
    a.probs[cls] = e;
    sum += e;
  }
  for (int cls = 0; cls < classes; ++cls) a.probs[cls] /= sum;

  if (a.sumRows) {
    for (int64_t i = 0; i < rowsLength; ++i) a.sumRows[i] += a.rows[i];
    for (int cls = 0; cls < classes; ++cls) {
      const double pc = a.probs[cls];
      const double* row = a.rows + static_cast<int64_t>(cls) * p;
      for (int j = 0; j < p; ++j) a.sumProbRows[j] += pc * row[j];
      for (int k = 0; k < n; ++k) a.sumProbHidden[cls * n + k] += pc * a.h[k];
      a.sumProbs[cls] += pc;
    }
    for (int k = 0; k < n; ++k) a.sumHidden[k] += a.h[k];
  }
  return finite;
}

/** optimiser.ts prepareGradient then Adam.step, term for term. */
static lobrtrl::AdamOutcome adam(const lobrtrl::AdamArgs& a) {
  const int64_t length = a.length;
  double* grad = a.grad;
  const PreparedGradient prepared = prepareGradientNorm(a);
  if (!prepared.finite) return lobrtrl::kSkippedNonFinite;
  lobrtrl::AdamOutcome outcome = lobrtrl::kApplied;
  double factor = 1;
  if (prepared.norm > a.clipNorm) {
    factor = a.clipNorm / prepared.norm;
    outcome = lobrtrl::kClipped;
  }
  // The clip scaling folded into the update pass; one division and one square root per
  // element (rate / correction1 and 1 / correction2 hoisted), which moves results by rounding only.
  const double b1 = a.beta1, b2 = a.beta2;
  const double stepScale = a.rate / a.correction1;
  const double inverseCorrection2 = 1 / a.correction2;
  double* __restrict params = a.params;
  double* __restrict first = a.m;
  double* __restrict second = a.v;
  double* __restrict gradient = grad;
  for (int64_t i = 0; i < length; ++i) {
    const double g = gradient[i] * factor;  // factor 1 when not clipped: exact
    gradient[i] = g;
    const double m = b1 * first[i] + (1 - b1) * g;
    const double v = b2 * second[i] + (1 - b2) * g * g;
    first[i] = m;
    second[i] = v;
    params[i] -= (stepScale * m) / (std::sqrt(v * inverseCorrection2) + a.epsilon);
  }
  return outcome;
}

/** Independent FMA chains, enough to cover latency times ports, all in registers. */
static double fmaLoop(int64_t iterations, double* flops) {
  constexpr int chains = FMA_CHAINS;
  typename VecTraits::reg acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = VecTraits::set1(1.0 + i * 1e-3);
  const typename VecTraits::reg decay = VecTraits::set1(0.999999);
  const typename VecTraits::reg offset = VecTraits::set1(1e-7);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < chains; ++i) acc[i] = VecTraits::fma(acc[i], decay, offset);
  }
  typename VecTraits::reg total = VecTraits::zero();
  for (int i = 0; i < chains; ++i) total = VecTraits::add(total, acc[i]);
  *flops = 2.0 * static_cast<double>(iterations) * chains * VecTraits::W;
  return VecTraits::hsum(total);
}

}  // namespace KERNEL_NS
