// The native RTRL kernels, one table per instruction set. addon.cc picks a table at load time
// from what the CPU reports; every table computes the same step (see kernel-impl.h).
#pragma once
#include <cstdint>

namespace lobrtrl {

/** Widest column strip of any instruction set's tile (AVX-512: 3 vectors of 8). */
constexpr int kMaxStripWidth = 32;

/** Doubles of scratch a step needs: slopes, the packed S_{t-1} strip, s V and the packed S_t strip. */
inline int64_t scratchLength(int n, int classes) {
  return static_cast<int64_t>(n) + static_cast<int64_t>(n) * kMaxStripWidth + static_cast<int64_t>(classes) * n +
         static_cast<int64_t>(n) * kMaxStripWidth;
}

struct StepArgs {
  int n, d, classes;
  int vOffset;   // offset of V in params ([W | U | b | V | c]); c follows V
  double scale;  // output scale s
  const double* params;
  const double* hPrev;
  const double* x;
  double* h;            // out: h_t
  const double* sPrev;  // N x P
  double* s;            // out: S_t, N x P
  double* probs;        // out: C
  double* rows;         // out: s V[c,:] S_t, C x P
  double* scratch;      // scratchLength(n, classes) doubles
  const double* logitOffsets;  // C added to the logits (the input skip's Q x), or null
  // Batch (next-move) running sums, all null for a FIFO learner.
  double* sumRows;        // C x P
  double* sumProbRows;    // P
  double* sumProbHidden;  // C x N
  double* sumHidden;      // N
  double* sumProbs;       // C
};

struct AdamArgs {
  int64_t length;
  double* params;
  double* grad;  // scaled in place when clipped, as the TypeScript optimiser does
  double* m;
  double* v;
  const uint8_t* decayMask;  // 1 where L2 applies
  double l2, clipNorm, rate, beta1, beta2, epsilon, correction1, correction2;
};

/** What an optimiser step did (optimiser.ts StepOutcome). */
enum AdamOutcome { kApplied = 0, kClipped = 1, kSkippedNonFinite = 2 };

struct KernelTable {
  const char* name;
  // Whole predict-side RTRL tick; false when h_t or S_t was not finite (both are then zeroed,
  // as are the projected rows, before the probabilities and sums are formed).
  bool (*step)(const StepArgs& args);
  // S_t = diag(1 - h^2)(W S_{t-1} + I_t) alone (bench and tests); scratch of scratchLength(n, 0).
  void (*sensitivity)(int n, int d, const double* params, const double* hPrev, const double* x,
                      const double* h, const double* sPrev, double* sNext, double* scratch);
  // `iterations` rounds of independent fused multiply-adds in registers; returns their
  // flop count through `flops` and a value that depends on every one of them.
  double (*fmaLoop)(int64_t iterations, double* flops);
  // prepareGradient (L2, finiteness, global-norm clip without overflow) then one Adam update.
  AdamOutcome (*adam)(const AdamArgs& args);
};

/** One task of a parallel step: `worker` is 0 on the calling thread, 1.. on the pool's helpers. */
using ParallelTask = void (*)(void* context, int task, int worker);

/** Runs tasks 0..tasks-1 over the pool (the caller takes part); returns when all are done. */
void parallelFor(int tasks, ParallelTask fn, void* context);
/** Threads a step may use, the caller included (1: no helpers, the default). */
void setParallelThreads(int threads);
int parallelThreads();

/** Steps smaller than this many multiply-adds in W S (N^2 P) stay on one thread. */
constexpr int64_t kParallelMinMacs = int64_t(1) << 17;

extern const KernelTable baselineTable;
#if defined(LOB_RTRL_X86)
extern const KernelTable avx2Table;
extern const KernelTable avx512Table;
#endif

}  // namespace lobrtrl
