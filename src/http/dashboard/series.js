// The dashboard's data, apart from the page so it can be tested in Node: a fixed-capacity
// window of predictions, each marked right or wrong once the engine says what it resolved to.
// The labels come from the service (a prediction's `resolved` runs on the stream, `label` in
// the history), so the page shows exactly what the engine scored, for every target.
//
// Memory stays flat over hours: every series lives in a ring of Float64Arrays, and a render
// copies the ring, oldest first, into arrays preallocated at the same capacity.

const UNRESOLVED = -1;

/** Index of the class with the largest probability, the lowest on ties (as the engine's metrics call it). */
function argmax(probs, classNames) {
  let best = 0;
  for (let c = 1; c < classNames.length; c++) if (probs[classNames[c]] > probs[classNames[best]]) best = c;
  return best;
}

/** The last `capacity` predictions of one stream, column by column. */
export class PredictionWindow {
  /**
   * `models`: model names, in the order of each prediction's probabilities.
   * `classNames`: the target's classes (P of `up` is drawn; marks sit on the first model's).
   */
  constructor(capacity, models, classNames = ['down', 'up']) {
    this.capacity = capacity;
    this.models = models;
    this.classNames = classNames;
    this.upClass = classNames.indexOf('up');
    this.time = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.mid = new Float64Array(capacity);
    this.probUp = models.map(() => new Float64Array(capacity));
    // The first model's call (class index) and, once resolved, 1 right, 0 wrong, UNRESOLVED until then.
    this.call = new Float64Array(capacity);
    this.outcome = new Float64Array(capacity);
    /** Predictions ever pushed; the newest is number total - 1. */
    this.total = 0;
    this.size = 0;
    this.lastSeq = -Infinity;
    /** Predictions in view that resolved, by whether the first model called them right. */
    this.right = 0;
    this.wrong = 0;
    // Rendering reuses these: typed arrays for lines, plain arrays (null = no dot) for marks.
    this.viewTime = new Float64Array(capacity);
    this.viewMid = new Float64Array(capacity);
    this.viewProb = models.map(() => new Float64Array(capacity));
    this.viewRight = new Array(capacity).fill(null);
    this.viewWrong = new Array(capacity).fill(null);
  }

  /**
   * Adds a prediction as the service sends it (probabilities by class name, per model); a
   * history's `label` marks it at once, a stream's `resolved` runs mark the earlier ones first.
   */
  push(timeSeconds, prediction) {
    if (prediction.resolved) for (const run of prediction.resolved) this.resolveRun(run.fromSeq, run.toSeq, run.label);
    if (this.size === this.capacity) this.forgetOldest();
    const slot = this.total % this.capacity;
    this.time[slot] = timeSeconds;
    this.seq[slot] = prediction.seq;
    this.lastSeq = prediction.seq;
    this.mid[slot] = prediction.mid;
    const models = prediction.models;
    for (let m = 0; m < this.probUp.length; m++) this.probUp[m][slot] = this.upClass >= 0 ? (models[m].probs[this.classNames[this.upClass]] ?? NaN) : NaN;
    this.call[slot] = argmax(models[0].probs, this.classNames);
    this.outcome[slot] = UNRESOLVED;
    this.total++;
    if (this.size < this.capacity) this.size++;
    if (typeof prediction.label === 'string') this.mark(slot, this.classNames.indexOf(prediction.label));
  }

  /**
   * Marks the predictions with fromSeq <= seq <= toSeq as resolved to class `label` (a name).
   * They are the oldest still pending, so the walk back from the newest stops below the run.
   */
  resolveRun(fromSeq, toSeq, label) {
    const labelIndex = this.classNames.indexOf(label);
    for (let i = this.total - 1; i >= this.total - this.size; i--) {
      const slot = i % this.capacity;
      const seq = this.seq[slot];
      if (seq < fromSeq) return;
      if (seq <= toSeq) this.mark(slot, labelIndex);
    }
  }

  /** The counts cover what is in view: the prediction leaving takes its mark with it. */
  forgetOldest() {
    const outcome = this.outcome[(this.total - this.size) % this.capacity];
    if (outcome === 1) this.right--;
    else if (outcome === 0) this.wrong--;
  }

  mark(slot, labelIndex) {
    if (labelIndex < 0 || this.outcome[slot] !== UNRESOLVED) return;
    const right = this.call[slot] === labelIndex;
    this.outcome[slot] = right ? 1 : 0;
    if (right) this.right++;
    else this.wrong++;
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
