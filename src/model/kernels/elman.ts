// Pure numerical kernels of the Elman network and its exact RTRL sensitivity.
// Flat Float64Arrays in, preallocated Float64Arrays out, sizes passed explicitly; they
// import nothing and allocate nothing, so a faster implementation (WASM SIMD, a native
// addon) can replace any of them behind the same signature.
//
// Parameter layout (shared with src/model/network.ts), row-major blocks:
//   W: N x N at 0 | U: N x d at N*N | b: N at N*N + N*d      (recurrent part, P entries)
//   V: C x N at P | c: C at P + C*N | Q: C x d at P + C*N + C  (output part; Q only with the
//   input skip, network.ts)
// Sensitivity S: N x P row-major, S[k*P + j] = d h[k] / d theta[j] for j < P.

/** h = tanh(W hPrev + U x + b). `hOut` must not alias `hPrev`. */
export function elmanStateStep(n: number, d: number, params: Float64Array, hPrev: Float64Array, x: Float64Array, hOut: Float64Array): void {
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

/** offsets = Q x: the input skip's logits (Q, C x d, at qOffset). */
export function inputSkipLogits(classes: number, d: number, qOffset: number, params: Float64Array, x: Float64Array, offsets: Float64Array): void {
  for (let c = 0; c < classes; c++) {
    let z = 0;
    const qRow = qOffset + c * d;
    for (let j = 0; j < d; j++) z += params[qRow + j] * x[j];
    offsets[c] = z;
  }
}

/**
 * probs = softmax(scale * V h + c + offsets), offsets (C, the input skip's Q x) optional.
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
  offsets?: Float64Array,
): void {
  const cOffset = outputOffset + classes * n;
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    let z = 0;
    const vRow = outputOffset + c * n;
    for (let k = 0; k < n; k++) z += params[vRow + k] * h[k];
    z = scale * z + params[cOffset + c];
    if (offsets !== undefined) z += offsets[c];
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
 *
 * Rounding contract (test/model/kernels.test.ts holds it bit for bit): every element is
 * summed in one fixed order, source rows four at a time, `((w0 s0 + w1 s1) + w2 s2) + w3 s3`,
 * each group added to the running sum in turn, the last N mod 4 source rows one by one, then
 * I_t is added and the sum scaled. Blocking may change which elements are computed together,
 * never that order, so results do not depend on N's divisibility or on the block sizes.
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
  // Output rows eight (then four) at a time: the loop is bound by loads and bounds checks,
  // and every source element loaded now feeds eight rows instead of one.
  let k = 0;
  for (; k + 8 <= n; k += 8) sensitivityRows8(n, d, p, k, params, hPrev, x, h, sPrev, sNext);
  for (; k + 4 <= n; k += 4) sensitivityRows4(n, d, p, k, params, hPrev, x, h, sPrev, sNext);
  for (; k < n; k++) sensitivityRow(n, d, p, k, params, hPrev, x, h, sPrev, sNext);
}

// --- sensitivity row blocks ---------------------------------------------------------------
// A block of R output rows k..k+R-1 runs these passes over the columns j:
//   group at m = 0 (assigns), groups at m = 4, 8, ... (add), single rows past the last group.
// When N is a multiple of 4 the last group pass also scales by 1 - h^2 ("fused"), saving a
// load-multiply-store pass per element. It cannot do so where a row's I_t is non-zero (I_t
// must be added before scaling), so there the last pass only adds and
// finishImmediateColumns completes the job. For a block those columns form three
// contiguous ranges: W rows k..k+R-1, U rows k..k+R-1 and b[k..k+R-1].

function sensitivityRows8(
  n: number,
  d: number,
  p: number,
  k: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
): void {
  const grouped = n - (n % 4);
  const fused = grouped === n;
  const unfusedEnd = fused ? n - 4 : grouped;
  assignGroupRows8(n, p, k, params, sPrev, sNext);
  for (let m = 4; m < unfusedEnd; m += 4) addGroupRows8(n, p, k, m, params, sPrev, sNext, 0, p);
  if (!fused) {
    for (let m = grouped; m < n; m++) addSourceRowRows8(n, p, k, m, params, sPrev, sNext);
    finishRows(n, d, p, k, 8, hPrev, x, h, sNext);
    return;
  }
  const m = n - 4;
  const wStart = k * n,
    wEnd = wStart + 8 * n;
  const uStart = n * n + k * d,
    uEnd = uStart + 8 * d;
  const bStart = n * n + n * d + k,
    bEnd = bStart + 8;
  addGroupScaledRows8(n, p, k, m, params, h, sPrev, sNext, 0, wStart);
  addGroupRows8(n, p, k, m, params, sPrev, sNext, wStart, wEnd);
  addGroupScaledRows8(n, p, k, m, params, h, sPrev, sNext, wEnd, uStart);
  addGroupRows8(n, p, k, m, params, sPrev, sNext, uStart, uEnd);
  addGroupScaledRows8(n, p, k, m, params, h, sPrev, sNext, uEnd, bStart);
  addGroupRows8(n, p, k, m, params, sPrev, sNext, bStart, bEnd);
  addGroupScaledRows8(n, p, k, m, params, h, sPrev, sNext, bEnd, p);
  finishImmediateColumns(n, d, p, k, 8, hPrev, x, h, sNext);
}

function sensitivityRows4(
  n: number,
  d: number,
  p: number,
  k: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
): void {
  const grouped = n - (n % 4);
  // With N = 4 the only group is the assigning one; that rare case is finished unfused.
  const fused = grouped === n && n > 4;
  const unfusedEnd = fused ? n - 4 : grouped;
  assignGroupRows4(n, p, k, params, sPrev, sNext);
  for (let m = 4; m < unfusedEnd; m += 4) addGroupRows4(n, p, k, m, params, sPrev, sNext, 0, p);
  if (!fused) {
    for (let m = grouped; m < n; m++) addSourceRowRows4(n, p, k, m, params, sPrev, sNext);
    finishRows(n, d, p, k, 4, hPrev, x, h, sNext);
    return;
  }
  const m = n - 4;
  const wStart = k * n,
    wEnd = wStart + 4 * n;
  const uStart = n * n + k * d,
    uEnd = uStart + 4 * d;
  const bStart = n * n + n * d + k,
    bEnd = bStart + 4;
  addGroupScaledRows4(n, p, k, m, params, h, sPrev, sNext, 0, wStart);
  addGroupRows4(n, p, k, m, params, sPrev, sNext, wStart, wEnd);
  addGroupScaledRows4(n, p, k, m, params, h, sPrev, sNext, wEnd, uStart);
  addGroupRows4(n, p, k, m, params, sPrev, sNext, uStart, uEnd);
  addGroupScaledRows4(n, p, k, m, params, h, sPrev, sNext, uEnd, bStart);
  addGroupRows4(n, p, k, m, params, sPrev, sNext, bStart, bEnd);
  addGroupScaledRows4(n, p, k, m, params, h, sPrev, sNext, bEnd, p);
  finishImmediateColumns(n, d, p, k, 4, hPrev, x, h, sNext);
}

/** One output row on its own, for the last N mod 4 rows (and every row when N < 4). */
function sensitivityRow(
  n: number,
  d: number,
  p: number,
  k: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
): void {
  const out = k * p;
  const wRow = k * n;
  let m = 0;
  if (n >= 4) {
    const w0 = params[wRow],
      w1 = params[wRow + 1],
      w2 = params[wRow + 2],
      w3 = params[wRow + 3];
    const r1 = p,
      r2 = 2 * p,
      r3 = 3 * p;
    for (let j = 0; j < p; j++) {
      sNext[out + j] = w0 * sPrev[j] + w1 * sPrev[r1 + j] + w2 * sPrev[r2 + j] + w3 * sPrev[r3 + j];
    }
    m = 4;
  } else {
    for (let j = 0; j < p; j++) sNext[out + j] = 0;
  }
  for (; m + 3 < n; m += 4) {
    const w0 = params[wRow + m],
      w1 = params[wRow + m + 1],
      w2 = params[wRow + m + 2],
      w3 = params[wRow + m + 3];
    const r0 = m * p,
      r1 = r0 + p,
      r2 = r1 + p,
      r3 = r2 + p;
    for (let j = 0; j < p; j++) {
      sNext[out + j] += w0 * sPrev[r0 + j] + w1 * sPrev[r1 + j] + w2 * sPrev[r2 + j] + w3 * sPrev[r3 + j];
    }
  }
  for (; m < n; m++) {
    const w = params[wRow + m];
    const r = m * p;
    for (let j = 0; j < p; j++) sNext[out + j] += w * sPrev[r + j];
  }
  finishRows(n, d, p, k, 1, hPrev, x, h, sNext);
}

/** Adds I_t to rows k..k+rows-1 and scales them by 1 - h^2, all columns. */
function finishRows(n: number, d: number, p: number, k: number, rows: number, hPrev: Float64Array, x: Float64Array, h: Float64Array, sNext: Float64Array): void {
  for (let row = k; row < k + rows; row++) {
    addImmediateJacobian(n, d, p, row, hPrev, x, sNext);
    const out = row * p;
    const slope = 1 - h[row] * h[row];
    for (let j = 0; j < p; j++) sNext[out + j] *= slope;
  }
}

/** Adds I_t to rows k..k+rows-1 and scales them by 1 - h^2 over the block's I_t column ranges only. */
function finishImmediateColumns(n: number, d: number, p: number, k: number, rows: number, hPrev: Float64Array, x: Float64Array, h: Float64Array, sNext: Float64Array): void {
  const wStart = k * n,
    wEnd = wStart + rows * n;
  const uStart = n * n + k * d,
    uEnd = uStart + rows * d;
  const bStart = n * n + n * d + k,
    bEnd = bStart + rows;
  for (let row = k; row < k + rows; row++) {
    addImmediateJacobian(n, d, p, row, hPrev, x, sNext);
    const out = row * p;
    const slope = 1 - h[row] * h[row];
    for (let j = wStart; j < wEnd; j++) sNext[out + j] *= slope;
    for (let j = uStart; j < uEnd; j++) sNext[out + j] *= slope;
    for (let j = bStart; j < bEnd; j++) sNext[out + j] *= slope;
  }
}

/** Immediate Jacobian of row k: only row k's own blocks are non-zero. */
function addImmediateJacobian(n: number, d: number, p: number, k: number, hPrev: Float64Array, x: Float64Array, sNext: Float64Array): void {
  const out = k * p;
  const wBlock = out + k * n;
  for (let j = 0; j < n; j++) sNext[wBlock + j] += hPrev[j];
  const uBlock = out + n * n + k * d;
  for (let j = 0; j < d; j++) sNext[uBlock + j] += x[j];
  sNext[out + n * n + n * d + k] += 1;
}

// The passes below are written out per row (a..h) so every weight and source value stays in
// a local. Weight w<row><i> = W[k + row, m + i]; s<i> = S_{t-1}[m + i, j].

function assignGroupRows8(n: number, p: number, k: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array): void {
  const wa = k * n,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n,
    we = wd + n,
    wf = we + n,
    wg = wf + n,
    wh = wg + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const e0 = params[we],
    e1 = params[we + 1],
    e2 = params[we + 2],
    e3 = params[we + 3];
  const f0 = params[wf],
    f1 = params[wf + 1],
    f2 = params[wf + 2],
    f3 = params[wf + 3];
  const g0 = params[wg],
    g1 = params[wg + 1],
    g2 = params[wg + 2],
    g3 = params[wg + 3];
  const h0 = params[wh],
    h1 = params[wh + 1],
    h2 = params[wh + 2],
    h3 = params[wh + 3];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p,
    oe = od + p,
    of = oe + p,
    og = of + p,
    oh = og + p;
  const r1 = p,
    r2 = 2 * p,
    r3 = 3 * p;
  for (let j = 0; j < p; j++) {
    const s0 = sPrev[j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] = a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3;
    sNext[ob + j] = b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3;
    sNext[oc + j] = c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3;
    sNext[od + j] = d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3;
    sNext[oe + j] = e0 * s0 + e1 * s1 + e2 * s2 + e3 * s3;
    sNext[of + j] = f0 * s0 + f1 * s1 + f2 * s2 + f3 * s3;
    sNext[og + j] = g0 * s0 + g1 * s1 + g2 * s2 + g3 * s3;
    sNext[oh + j] = h0 * s0 + h1 * s1 + h2 * s2 + h3 * s3;
  }
}

function addGroupRows8(n: number, p: number, k: number, m: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array, from: number, to: number): void {
  const wa = k * n + m,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n,
    we = wd + n,
    wf = we + n,
    wg = wf + n,
    wh = wg + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const e0 = params[we],
    e1 = params[we + 1],
    e2 = params[we + 2],
    e3 = params[we + 3];
  const f0 = params[wf],
    f1 = params[wf + 1],
    f2 = params[wf + 2],
    f3 = params[wf + 3];
  const g0 = params[wg],
    g1 = params[wg + 1],
    g2 = params[wg + 2],
    g3 = params[wg + 3];
  const h0 = params[wh],
    h1 = params[wh + 1],
    h2 = params[wh + 2],
    h3 = params[wh + 3];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p,
    oe = od + p,
    of = oe + p,
    og = of + p,
    oh = og + p;
  const r0 = m * p,
    r1 = r0 + p,
    r2 = r1 + p,
    r3 = r2 + p;
  for (let j = from; j < to; j++) {
    const s0 = sPrev[r0 + j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] += a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3;
    sNext[ob + j] += b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3;
    sNext[oc + j] += c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3;
    sNext[od + j] += d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3;
    sNext[oe + j] += e0 * s0 + e1 * s1 + e2 * s2 + e3 * s3;
    sNext[of + j] += f0 * s0 + f1 * s1 + f2 * s2 + f3 * s3;
    sNext[og + j] += g0 * s0 + g1 * s1 + g2 * s2 + g3 * s3;
    sNext[oh + j] += h0 * s0 + h1 * s1 + h2 * s2 + h3 * s3;
  }
}

/** addGroupRows8, then each row scaled by its 1 - h^2: the last pass where I_t is zero. */
function addGroupScaledRows8(
  n: number,
  p: number,
  k: number,
  m: number,
  params: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
  from: number,
  to: number,
): void {
  const wa = k * n + m,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n,
    we = wd + n,
    wf = we + n,
    wg = wf + n,
    wh = wg + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const e0 = params[we],
    e1 = params[we + 1],
    e2 = params[we + 2],
    e3 = params[we + 3];
  const f0 = params[wf],
    f1 = params[wf + 1],
    f2 = params[wf + 2],
    f3 = params[wf + 3];
  const g0 = params[wg],
    g1 = params[wg + 1],
    g2 = params[wg + 2],
    g3 = params[wg + 3];
  const h0 = params[wh],
    h1 = params[wh + 1],
    h2 = params[wh + 2],
    h3 = params[wh + 3];
  const sa = 1 - h[k] * h[k],
    sb = 1 - h[k + 1] * h[k + 1],
    sc = 1 - h[k + 2] * h[k + 2],
    sd = 1 - h[k + 3] * h[k + 3];
  const se = 1 - h[k + 4] * h[k + 4],
    sf = 1 - h[k + 5] * h[k + 5],
    sg = 1 - h[k + 6] * h[k + 6],
    sh = 1 - h[k + 7] * h[k + 7];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p,
    oe = od + p,
    of = oe + p,
    og = of + p,
    oh = og + p;
  const r0 = m * p,
    r1 = r0 + p,
    r2 = r1 + p,
    r3 = r2 + p;
  for (let j = from; j < to; j++) {
    const s0 = sPrev[r0 + j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] = (sNext[oa + j] + (a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3)) * sa;
    sNext[ob + j] = (sNext[ob + j] + (b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3)) * sb;
    sNext[oc + j] = (sNext[oc + j] + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3)) * sc;
    sNext[od + j] = (sNext[od + j] + (d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3)) * sd;
    sNext[oe + j] = (sNext[oe + j] + (e0 * s0 + e1 * s1 + e2 * s2 + e3 * s3)) * se;
    sNext[of + j] = (sNext[of + j] + (f0 * s0 + f1 * s1 + f2 * s2 + f3 * s3)) * sf;
    sNext[og + j] = (sNext[og + j] + (g0 * s0 + g1 * s1 + g2 * s2 + g3 * s3)) * sg;
    sNext[oh + j] = (sNext[oh + j] + (h0 * s0 + h1 * s1 + h2 * s2 + h3 * s3)) * sh;
  }
}

function addSourceRowRows8(n: number, p: number, k: number, m: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array): void {
  const wa = k * n + m;
  const a = params[wa],
    b = params[wa + n],
    c = params[wa + 2 * n],
    d = params[wa + 3 * n];
  const e = params[wa + 4 * n],
    f = params[wa + 5 * n],
    g = params[wa + 6 * n],
    h = params[wa + 7 * n];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p,
    oe = od + p,
    of = oe + p,
    og = of + p,
    oh = og + p;
  const r = m * p;
  for (let j = 0; j < p; j++) {
    const s = sPrev[r + j];
    sNext[oa + j] += a * s;
    sNext[ob + j] += b * s;
    sNext[oc + j] += c * s;
    sNext[od + j] += d * s;
    sNext[oe + j] += e * s;
    sNext[of + j] += f * s;
    sNext[og + j] += g * s;
    sNext[oh + j] += h * s;
  }
}

function assignGroupRows4(n: number, p: number, k: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array): void {
  const wa = k * n,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p;
  const r1 = p,
    r2 = 2 * p,
    r3 = 3 * p;
  for (let j = 0; j < p; j++) {
    const s0 = sPrev[j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] = a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3;
    sNext[ob + j] = b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3;
    sNext[oc + j] = c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3;
    sNext[od + j] = d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3;
  }
}

function addGroupRows4(n: number, p: number, k: number, m: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array, from: number, to: number): void {
  const wa = k * n + m,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p;
  const r0 = m * p,
    r1 = r0 + p,
    r2 = r1 + p,
    r3 = r2 + p;
  for (let j = from; j < to; j++) {
    const s0 = sPrev[r0 + j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] += a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3;
    sNext[ob + j] += b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3;
    sNext[oc + j] += c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3;
    sNext[od + j] += d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3;
  }
}

function addGroupScaledRows4(
  n: number,
  p: number,
  k: number,
  m: number,
  params: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
  from: number,
  to: number,
): void {
  const wa = k * n + m,
    wb = wa + n,
    wc = wb + n,
    wd = wc + n;
  const a0 = params[wa],
    a1 = params[wa + 1],
    a2 = params[wa + 2],
    a3 = params[wa + 3];
  const b0 = params[wb],
    b1 = params[wb + 1],
    b2 = params[wb + 2],
    b3 = params[wb + 3];
  const c0 = params[wc],
    c1 = params[wc + 1],
    c2 = params[wc + 2],
    c3 = params[wc + 3];
  const d0 = params[wd],
    d1 = params[wd + 1],
    d2 = params[wd + 2],
    d3 = params[wd + 3];
  const sa = 1 - h[k] * h[k],
    sb = 1 - h[k + 1] * h[k + 1],
    sc = 1 - h[k + 2] * h[k + 2],
    sd = 1 - h[k + 3] * h[k + 3];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p;
  const r0 = m * p,
    r1 = r0 + p,
    r2 = r1 + p,
    r3 = r2 + p;
  for (let j = from; j < to; j++) {
    const s0 = sPrev[r0 + j],
      s1 = sPrev[r1 + j],
      s2 = sPrev[r2 + j],
      s3 = sPrev[r3 + j];
    sNext[oa + j] = (sNext[oa + j] + (a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3)) * sa;
    sNext[ob + j] = (sNext[ob + j] + (b0 * s0 + b1 * s1 + b2 * s2 + b3 * s3)) * sb;
    sNext[oc + j] = (sNext[oc + j] + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3)) * sc;
    sNext[od + j] = (sNext[od + j] + (d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3)) * sd;
  }
}

function addSourceRowRows4(n: number, p: number, k: number, m: number, params: Float64Array, sPrev: Float64Array, sNext: Float64Array): void {
  const wa = k * n + m;
  const a = params[wa],
    b = params[wa + n],
    c = params[wa + 2 * n],
    d = params[wa + 3 * n];
  const oa = k * p,
    ob = oa + p,
    oc = ob + p,
    od = oc + p;
  const r = m * p;
  for (let j = 0; j < p; j++) {
    const s = sPrev[r + j];
    sNext[oa + j] += a * s;
    sNext[ob + j] += b * s;
    sNext[oc + j] += c * s;
    sNext[od + j] += d * s;
  }
}

/**
 * rows[c, :] = scale * V[c, :] S for every class c: the sensitivity projected through the
 * output layer. With it the recurrent gradient of a cross-entropy loss with label y is
 * sum_c p_c rows[c] - rows[y], so a label that arrives later needs only these C rows.
 * Rounding contract: each element is 0 + v_0 s_0 + v_1 s_1 + ... added left to right over
 * k, skipping the k with v_k = 0.
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
    let k = 0;
    // Eight (then four) source rows per pass keep the running sum in a register between them.
    for (; k + 7 < n; k += 8) {
      const v0 = scale * params[vRow + k],
        v1 = scale * params[vRow + k + 1];
      const v2 = scale * params[vRow + k + 2],
        v3 = scale * params[vRow + k + 3];
      const v4 = scale * params[vRow + k + 4],
        v5 = scale * params[vRow + k + 5];
      const v6 = scale * params[vRow + k + 6],
        v7 = scale * params[vRow + k + 7];
      if (v0 === 0 || v1 === 0 || v2 === 0 || v3 === 0 || v4 === 0 || v5 === 0 || v6 === 0 || v7 === 0) {
        addScaledRowsSkippingZeros(p, k, k + 8, vRow, scale, params, s, rows, dst);
        continue;
      }
      const r0 = k * p,
        r1 = r0 + p,
        r2 = r1 + p,
        r3 = r2 + p,
        r4 = r3 + p,
        r5 = r4 + p,
        r6 = r5 + p,
        r7 = r6 + p;
      for (let j = 0; j < p; j++) {
        rows[dst + j] = rows[dst + j] + v0 * s[r0 + j] + v1 * s[r1 + j] + v2 * s[r2 + j] + v3 * s[r3 + j] + v4 * s[r4 + j] + v5 * s[r5 + j] + v6 * s[r6 + j] + v7 * s[r7 + j];
      }
    }
    for (; k + 3 < n; k += 4) {
      const v0 = scale * params[vRow + k],
        v1 = scale * params[vRow + k + 1];
      const v2 = scale * params[vRow + k + 2],
        v3 = scale * params[vRow + k + 3];
      if (v0 === 0 || v1 === 0 || v2 === 0 || v3 === 0) {
        addScaledRowsSkippingZeros(p, k, k + 4, vRow, scale, params, s, rows, dst);
        continue;
      }
      const r0 = k * p,
        r1 = r0 + p,
        r2 = r1 + p,
        r3 = r2 + p;
      for (let j = 0; j < p; j++) {
        rows[dst + j] = rows[dst + j] + v0 * s[r0 + j] + v1 * s[r1 + j] + v2 * s[r2 + j] + v3 * s[r3 + j];
      }
    }
    addScaledRowsSkippingZeros(p, k, n, vRow, scale, params, s, rows, dst);
  }
}

/** rows[dst..] += scale * V[c, k] * S[k, :] for k in [from, to), one source row at a time. */
function addScaledRowsSkippingZeros(
  p: number,
  from: number,
  to: number,
  vRow: number,
  scale: number,
  params: Float64Array,
  s: Float64Array,
  rows: Float64Array,
  dst: number,
): void {
  for (let k = from; k < to; k++) {
    const v = scale * params[vRow + k];
    if (v === 0) continue;
    const src = k * p;
    for (let j = 0; j < p; j++) rows[dst + j] += v * s[src + j];
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
