// Native TBPTT gradient: the truncated backward pass of tbptt.ts (accumulateOldest) over a run
// of pending ticks in one call. Every copy is compiled without floating-point contraction and
// sums in the TypeScript order (vectorised across independent elements only), so the gradient
// is the TypeScript one bit for bit and a TBPTT learner predicts the same on either kernel.
#pragma once
#include <cstdint>

#include "kernel.h"

namespace lobrtrl {

struct TbpttArgs {
  int n, d, classes, skipInputs, truncation, label;
  double scale;  // output scale s
  const double* params;  // [W | U | b | V | c | Q], Q: classes x skipInputs
  // History ring: tick t at slot t mod historySize (x_t: d doubles, h_t: n doubles).
  int historySize;
  const double* historyInputs;
  const double* historyHidden;
  // Pending ring, oldest at `head`: tick index, probabilities (C) and s V at prediction (C x N).
  int pendingSlots, head, count;
  const double* pendingTicks;
  const double* pendingProbs;
  const double* pendingOutputWeights;
  double* grad;     // accumulated into, length of params
  double* scratch;  // tbpttScratchLength(n) doubles
};

/** Doubles of scratch a call needs: delta, delta times the slope, and a zero h before the sequence. */
inline int64_t tbpttScratchLength(int n) { return 3 * static_cast<int64_t>(n); }

struct TbpttKernel {
  const char* name;
  // Adds the truncated gradient of the `count` oldest pending ticks' losses (all labelled
  // `label`) to grad, oldest first, as `count` calls of tbptt.ts accumulateOldest would.
  void (*accumulate)(const TbpttArgs& args);
  // optimiser.ts prepareGradient then Adam.step exactly as the TypeScript writes them (two
  // divisions and a square root per element, the norm summed in order): the same bits, so a
  // TBPTT learner's updates do not depend on the kernel either.
  AdamOutcome (*exactAdam)(const AdamArgs& args);
};

extern const TbpttKernel tbpttBaseline;
#if defined(LOB_RTRL_X86)
extern const TbpttKernel tbpttAvx2;
#endif

}  // namespace lobrtrl
