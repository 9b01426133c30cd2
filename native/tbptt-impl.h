// The TBPTT backward pass written once in plain loops, included by tbptt-*.cc inside its own
// namespace (TBPTT_NS) and compiled there with that instruction set's flags and
// -ffp-contract=off: the compiler may vectorise the loops over j and k (each element is its
// own chain of one multiply and one add, in the same order as in TypeScript) but never fuse
// or reorder a sum, which keeps every result bit-identical to tbptt.ts.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tbptt.h"

namespace TBPTT_NS {

#include "gradient-norm.h"

static void accumulate(const lobrtrl::TbpttArgs& a) {
  const int n = a.n, d = a.d, classes = a.classes;
  const int64_t uOffset = static_cast<int64_t>(n) * n;
  const int64_t bOffset = uOffset + static_cast<int64_t>(n) * d;
  const int64_t vOffset = bOffset + n;
  const int64_t cOffset = vOffset + static_cast<int64_t>(classes) * n;
  const int64_t qOffset = cOffset + classes;
  const int skipInputs = a.skipInputs;
  const int64_t size = a.historySize;
  double* __restrict grad = a.grad;
  double* __restrict delta = a.scratch;
  double* __restrict deltaA = a.scratch + n;
  double* __restrict zeros = a.scratch + 2 * n;
  for (int k = 0; k < n; ++k) zeros[k] = 0.0;

  for (int q = 0; q < a.count; ++q) {
    const int slot = (a.head + q) % a.pendingSlots;
    const int64_t t = static_cast<int64_t>(a.pendingTicks[slot]);
    const double* __restrict hT = a.historyHidden + (t % size) * n;
    const double* __restrict xT = a.historyInputs + (t % size) * d;

    // Output layer and dL/dh_t with the output weights the prediction was made with.
    for (int k = 0; k < n; ++k) delta[k] = 0.0;
    for (int c = 0; c < classes; ++c) {
      const double error = a.pendingProbs[static_cast<int64_t>(slot) * classes + c] - (c == a.label ? 1.0 : 0.0);
      const double scaledError = a.scale * error;
      const double* __restrict weights = a.pendingOutputWeights + (static_cast<int64_t>(slot) * classes + c) * n;
      double* __restrict gradV = grad + vOffset + static_cast<int64_t>(c) * n;
      for (int k = 0; k < n; ++k) gradV[k] += scaledError * hT[k];
      for (int k = 0; k < n; ++k) delta[k] += error * weights[k];
      grad[cOffset + c] += error;
      double* __restrict gradQ = grad + qOffset + static_cast<int64_t>(c) * skipInputs;
      for (int j = 0; j < skipInputs; ++j) gradQ[j] += error * xT[j];
    }

    const int64_t oldest = std::max<int64_t>(0, t - a.truncation + 1);
    for (int64_t s = t; s >= oldest; --s) {
      const double* __restrict hS = a.historyHidden + (s % size) * n;
      const double* __restrict hPrev = s >= 1 ? a.historyHidden + ((s - 1) % size) * n : zeros;
      const double* __restrict x = a.historyInputs + (s % size) * d;
      for (int k = 0; k < n; ++k) deltaA[k] = delta[k] * (1.0 - hS[k] * hS[k]);
      for (int i = 0; i < n; ++i) {
        const double da = deltaA[i];
        if (da == 0.0) continue;
        double* __restrict gradW = grad + static_cast<int64_t>(i) * n;
        for (int j = 0; j < n; ++j) gradW[j] += da * hPrev[j];
        double* __restrict gradU = grad + uOffset + static_cast<int64_t>(i) * d;
        for (int j = 0; j < d; ++j) gradU[j] += da * x[j];
        grad[bOffset + i] += da;
      }
      if (s == oldest) break;
      // delta_{s-1}[j] = sum_i W[i, j] deltaA[i], summed over i in order for every j at once.
      for (int j = 0; j < n; ++j) delta[j] = 0.0;
      for (int i = 0; i < n; ++i) {
        const double da = deltaA[i];
        const double* __restrict wRow = a.params + static_cast<int64_t>(i) * n;
        for (int j = 0; j < n; ++j) delta[j] += wRow[j] * da;
      }
    }
  }
}

/** optimiser.ts prepareGradient then Adam.step, operation for operation. */
static lobrtrl::AdamOutcome exactAdam(const lobrtrl::AdamArgs& a) {
  const int64_t length = a.length;
  double* __restrict grad = a.grad;
  double* __restrict params = a.params;
  const PreparedGradient prepared = prepareGradientNorm(a);
  if (!prepared.finite) return lobrtrl::kSkippedNonFinite;
  lobrtrl::AdamOutcome outcome = lobrtrl::kApplied;
  if (prepared.norm > a.clipNorm) {
    const double factor = a.clipNorm / prepared.norm;
    for (int64_t i = 0; i < length; ++i) grad[i] *= factor;
    outcome = lobrtrl::kClipped;
  }
  const double b1 = a.beta1, b2 = a.beta2, rate = a.rate, correction1 = a.correction1, correction2 = a.correction2, epsilon = a.epsilon;
  double* __restrict first = a.m;
  double* __restrict second = a.v;
  for (int64_t i = 0; i < length; ++i) {
    const double g = grad[i];
    const double m = b1 * first[i] + (1 - b1) * g;
    const double v = b2 * second[i] + (1 - b2) * g * g;
    first[i] = m;
    second[i] = v;
    params[i] -= (rate * (m / correction1)) / (std::sqrt(v / correction2) + epsilon);
  }
  return outcome;
}

}  // namespace TBPTT_NS
