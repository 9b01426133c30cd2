// The dashboard's data, apart from the page so it can be tested in Node: a fixed-capacity
// window of predictions and the next-move resolution of the first model's calls.
//
// Memory stays flat over hours: every series lives in a ring of Float64Arrays, and a render
// copies the ring, oldest first, into arrays preallocated at the same capacity.

const UNRESOLVED = -1;

/** The last `capacity` predictions of one symbol, column by column. */
export class PredictionWindow {
  constructor(capacity, models) {
    this.capacity = capacity;
    this.models = models;
    this.time = new Float64Array(capacity);
    this.mid = new Float64Array(capacity);
    this.probUp = models.map(() => new Float64Array(capacity));
    // First model's call once the mid moved: 1 right, 0 wrong, UNRESOLVED until then.
    this.outcome = new Float64Array(capacity);
    /** Predictions ever pushed; the newest is number total - 1. */
    this.total = 0;
    this.size = 0;
    this.lastSeq = -Infinity;
    // Rendering reuses these: typed arrays for lines, plain arrays (null = no dot) for marks.
    this.viewTime = new Float64Array(capacity);
    this.viewMid = new Float64Array(capacity);
    this.viewProb = models.map(() => new Float64Array(capacity));
    this.viewRight = new Array(capacity).fill(null);
    this.viewWrong = new Array(capacity).fill(null);
  }

  push(timeSeconds, seq, mid, probsUp) {
    const slot = this.total % this.capacity;
    this.time[slot] = timeSeconds;
    this.lastSeq = seq;
    this.mid[slot] = mid;
    for (let m = 0; m < this.probUp.length; m++) this.probUp[m][slot] = probsUp[m];
    this.outcome[slot] = UNRESOLVED;
    this.total++;
    if (this.size < this.capacity) this.size++;
  }

  /** Sets the outcome of prediction number `index` if it is still in the window. */
  resolve(index, right) {
    if (index < this.total - this.size || index >= this.total) return;
    this.outcome[index % this.capacity] = right ? 1 : 0;
  }

  probUpOf(index, model) {
    return this.probUp[model][index % this.capacity];
  }

  get lastTime() {
    return this.size === 0 ? -Infinity : this.time[(this.total - 1) % this.capacity];
  }

  /** uPlot data for [time, mid] and [time, P(up)..., right, wrong], oldest first. */
  views() {
    const n = this.size;
    const first = this.total - n;
    for (let k = 0; k < n; k++) {
      const slot = (first + k) % this.capacity;
      this.viewTime[k] = this.time[slot];
      this.viewMid[k] = this.mid[slot];
      for (let m = 0; m < this.probUp.length; m++) this.viewProb[m][k] = this.probUp[m][slot];
      const outcome = this.outcome[slot];
      const p = this.probUp.length > 0 ? this.probUp[0][slot] : null;
      this.viewRight[k] = outcome === 1 ? p : null;
      this.viewWrong[k] = outcome === 0 ? p : null;
    }
    const time = this.viewTime.subarray(0, n);
    // uPlot reads a series by index up to the x length, so oversized mark arrays are safe.
    return {
      mid: [time, this.viewMid.subarray(0, n)],
      prob: [time, ...this.viewProb.map((column) => column.subarray(0, n)), this.viewRight, this.viewWrong],
    };
  }
}

/**
 * Next-move labels, worked out in the page: when the mid changes, every prediction made since
 * the previous change resolves to the direction of the move (as the engine scores them).
 */
export class NextMoveResolver {
  constructor() {
    this.reset();
  }

  reset() {
    this.lastMid = NaN;
    this.pendingFrom = -1;
    this.right = 0;
    this.wrong = 0;
  }

  /** Forget predictions waiting across a gap in the stream: their label is unknown. */
  dropPending() {
    this.lastMid = NaN;
    this.pendingFrom = -1;
  }

  /** Called before `ring.push` of prediction number `index` with mid `mid`. */
  onPrediction(ring, index, mid) {
    if (this.pendingFrom >= 0 && mid !== this.lastMid) {
      const up = mid > this.lastMid;
      // Predictions already pushed out of the window are neither drawn nor counted.
      for (let i = Math.max(this.pendingFrom, ring.total - ring.size); i < index; i++) {
        // Ties call "down", the lower class, exactly as the engine's metrics do.
        const right = ring.probUpOf(i, 0) > 0.5 === up;
        ring.resolve(i, right);
        if (right) this.right++;
        else this.wrong++;
      }
      this.pendingFrom = index;
    }
    if (this.pendingFrom < 0) this.pendingFrom = index;
    this.lastMid = mid;
  }
}
