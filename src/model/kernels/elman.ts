// Pure numerical kernels of the Elman network and its exact RTRL sensitivity.
// Flat Float64Arrays in, preallocated Float64Arrays out, sizes passed explicitly; they
// import nothing and allocate nothing, so a faster implementation (WASM SIMD, a native
// addon) can replace any of them behind the same signature.
//
// Parameter layout (shared with src/model/network.ts), row-major blocks:
//   W: N x N at 0 | U: N x d at N*N | b: N at N*N + N*d      (recurrent part, P entries)
//   V: C x N at P | c: C at P + C*N                           (output part)
// Sensitivity S: N x P row-major, S[k*P + j] = d h[k] / d theta[j] for j < P.

/** h = tanh(W hPrev + U x + b). `hOut` must not alias `hPrev`. */
export function elmanStateStep(
  n: number,
  d: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  hOut: Float64Array,
): void {
  const uOffset = n * n;
  const bOffset = uOffset + n * d;
  for (let i = 0; i < n; i++) {
    let a = params[bOffset + i];
    const wRow = i * n;
    for (let j = 0; j < n; j++) a += params[wRow + j] * hPrev[j];
    const uRow = uOffset + i * d;
    for (let j = 0; j < d; j++) a += params[uRow + j] * x[j];
    hOut[i] = Math.tanh(a);
  }
}

/**
 * probs = softmax(scale * V h + c). `logits` is scratch of length C.
 * Subtracting the max keeps exp finite for any finite logit.
 */
export function elmanOutput(
  n: number,
  classes: number,
  outputOffset: number,
  scale: number,
  params: Float64Array,
  h: Float64Array,
  probs: Float64Array,
): void {
  const cOffset = outputOffset + classes * n;
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    let z = 0;
    const vRow = outputOffset + c * n;
    for (let k = 0; k < n; k++) z += params[vRow + k] * h[k];
    z = scale * z + params[cOffset + c];
    probs[c] = z;
    if (z > max) max = z;
  }
  let sum = 0;
  for (let c = 0; c < classes; c++) {
    const e = Math.exp(probs[c] - max);
    probs[c] = e;
    sum += e;
  }
  for (let c = 0; c < classes; c++) probs[c] /= sum;
}

/**
 * Exact RTRL sensitivity update:
 *   S_t = diag(1 - h_t^2) (W S_{t-1} + I_t)
 * where I_t is the immediate Jacobian d a_t / d theta with h_{t-1}, x_t fixed: row k holds
 * h_{t-1} at W's row-k block, x_t at U's row-k block and 1 at b_k.
 * `sNext` must not alias `sPrev`. Cost: N*N*P multiply-adds, the whole price of RTRL.
 */
export function rtrlSensitivityStep(
  n: number,
  d: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
): void {
  const p = n * n + n * d + n;
  for (let k = 0; k < n; k++) {
    const out = k * p;
    const wRow = k * n;
    // W S_{t-1}, row k: four source rows per pass so each output element is loaded and
    // stored once per four multiply-adds (the loop is memory-bound otherwise).
    let m = 0;
    if (n >= 4) {
      const w0 = params[wRow], w1 = params[wRow + 1], w2 = params[wRow + 2], w3 = params[wRow + 3];
      const r0 = 0, r1 = p, r2 = 2 * p, r3 = 3 * p;
      for (let j = 0; j < p; j++) {
        sNext[out + j] = w0 * sPrev[r0 + j] + w1 * sPrev[r1 + j] + w2 * sPrev[r2 + j] + w3 * sPrev[r3 + j];
      }
      m = 4;
    } else {
      for (let j = 0; j < p; j++) sNext[out + j] = 0;
    }
    for (; m + 3 < n; m += 4) {
      const w0 = params[wRow + m], w1 = params[wRow + m + 1], w2 = params[wRow + m + 2], w3 = params[wRow + m + 3];
      const r0 = m * p, r1 = r0 + p, r2 = r1 + p, r3 = r2 + p;
      for (let j = 0; j < p; j++) {
        sNext[out + j] += w0 * sPrev[r0 + j] + w1 * sPrev[r1 + j] + w2 * sPrev[r2 + j] + w3 * sPrev[r3 + j];
      }
    }
    for (; m < n; m++) {
      const w = params[wRow + m];
      const r = m * p;
      for (let j = 0; j < p; j++) sNext[out + j] += w * sPrev[r + j];
    }
    // Immediate Jacobian: only row k's own blocks are non-zero.
    const wBlock = out + k * n;
    for (let j = 0; j < n; j++) sNext[wBlock + j] += hPrev[j];
    const uBlock = out + n * n + k * d;
    for (let j = 0; j < d; j++) sNext[uBlock + j] += x[j];
    sNext[out + n * n + n * d + k] += 1;
    const slope = 1 - h[k] * h[k];
    for (let j = 0; j < p; j++) sNext[out + j] *= slope;
  }
}

/**
 * rows[c, :] = scale * V[c, :] S for every class c: the sensitivity projected through the
 * output layer. With it the recurrent gradient of a cross-entropy loss with label y is
 * sum_c p_c rows[c] - rows[y], so a label that arrives later needs only these C rows.
 */
export function projectSensitivity(
  n: number,
  p: number,
  classes: number,
  outputOffset: number,
  scale: number,
  params: Float64Array,
  s: Float64Array,
  rows: Float64Array,
  rowsOffset: number,
): void {
  for (let c = 0; c < classes; c++) {
    const dst = rowsOffset + c * p;
    for (let j = 0; j < p; j++) rows[dst + j] = 0;
    const vRow = outputOffset + c * n;
    for (let k = 0; k < n; k++) {
      const v = scale * params[vRow + k];
      if (v === 0) continue;
      const src = k * p;
      for (let j = 0; j < p; j++) rows[dst + j] += v * s[src + j];
    }
  }
}

/** True when every element of a[offset, offset+length) is finite. */
export function allFinite(a: Float64Array, offset: number, length: number): boolean {
  for (let i = offset; i < offset + length; i++) {
    // x - x is NaN exactly for NaN and +-Infinity.
    if (a[i] - a[i] !== 0) return false;
  }
  return true;
}
