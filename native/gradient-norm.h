// The first half of optimiser.ts prepareGradient, shared by the RTRL kernels' Adam and TBPTT's
// exact Adam: L2 added where the mask says, the finiteness check, and the global norm computed
// on values scaled by the largest magnitude (a huge finite gradient is clipped, not overflowed).
// Included inside each copy's own namespace (KERNEL_NS, TBPTT_NS), after the standard headers,
// so every copy is compiled with its own flags (TBPTT's without contraction, summing in index
// order as TypeScript does) and no two are merged at link time.

struct PreparedGradient {
  bool finite;
  /** maxAbs * sqrt(sum of (g / maxAbs)^2); 0 when no clip applies (clipNorm or the gradient 0). */
  double norm;
};

static inline PreparedGradient prepareGradientNorm(const lobrtrl::AdamArgs& a) {
  const int64_t length = a.length;
  double* grad = a.grad;
  double maxAbs = 0;
  bool finite = true;
  for (int64_t i = 0; i < length; ++i) {
    double g = grad[i];
    if (a.l2 != 0 && a.decayMask[i] == 1) {
      g += a.l2 * a.params[i];
      grad[i] = g;
    }
    const double magnitude = std::fabs(g);
    finite &= magnitude - magnitude == 0;
    maxAbs = magnitude > maxAbs ? magnitude : maxAbs;
  }
  if (!finite) return {false, 0};
  if (a.clipNorm == 0 || maxAbs == 0) return {true, 0};
  const double inverse = 1 / maxAbs;
  double sum = 0;
  for (int64_t i = 0; i < length; ++i) {
    const double scaled = grad[i] * inverse;
    sum += scaled * scaled;
  }
  return {true, maxAbs * std::sqrt(sum)};
}
