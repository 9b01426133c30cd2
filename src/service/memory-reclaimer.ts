// When the memory of sleeping symbols goes back to the system: a while after symbols hibernate
// (or the background restore has summarised and released stored ones), one collection on every
// thread that held them, then the allocator's free pages returned (src/engine/memory.ts).
// Requests that arrive together make one reclaim: many symbols going idle at once cost one
// collection per thread, not one each. A collection pauses its thread for milliseconds (the
// heap of summaries is small; the typed arrays it frees are not walked), so it never runs more
// often than `delayMs` allows.
import { collectGarbage, releaseFreeMemory } from '../engine/memory.js';

const BACKING_STORE_SWEEP_MS = 150;

export interface MemoryReclaimerOptions {
  /**
   * The collection on this thread: major where the symbols' engines lived (one thread), minor
   * where they live on workers and what this thread drops dies young (the states it writes, the
   * engines a restore decodes to summarise): a major one paused it 30 ms at 1,000 symbols.
   */
  readonly collection: 'major' | 'minor';
  /** How long after the first request the reclaim runs, gathering the requests meanwhile. */
  readonly delayMs: number;
  /** Collections on the other threads (the symbol workers); resolves when every one has run. */
  readonly collectElsewhere?: () => Promise<void>;
  readonly onError: (error: unknown) => void;
}

export class MemoryReclaimer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private requestedWhileRunning = false;
  private closed = false;
  /** Reclaims run since start, and the main thread's pause in the last one. */
  reclaims = 0;
  lastPauseMs = 0;

  constructor(private readonly options: MemoryReclaimerOptions) {}

  /** Something was freed: a reclaim runs within `delayMs` (one for every request until then). */
  request(): void {
    if (this.closed) return;
    if (this.running) {
      this.requestedWhileRunning = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reclaimNow();
    }, this.options.delayMs);
    this.timer.unref();
  }

  /** Runs a reclaim now, after the one running if there is one (which may have started before what was freed since). */
  reclaimNow(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const run = (this.running ?? Promise.resolve()).then(() => this.reclaim());
    this.running = run;
    void run.finally(() => {
      if (this.running !== run) return;
      this.running = null;
      if (this.requestedWhileRunning) this.request();
    });
    return run;
  }

  private async reclaim(): Promise<void> {
    // This run's collections cover whatever was freed before they start.
    this.requestedWhileRunning = false;
    try {
      const started = performance.now();
      collectGarbage(this.options.collection);
      this.lastPauseMs = performance.now() - started;
      await this.options.collectElsewhere?.();
      // V8 frees the dead arrays' backing stores on a background thread after the collection
      // (measured: 1,000 arrays of 190 KB freed within 50 ms); trimming before would find them in use.
      await new Promise((resolve) => setTimeout(resolve, BACKING_STORE_SWEEP_MS).unref());
      await releaseFreeMemory();
      this.reclaims++;
    } catch (error) {
      this.options.onError(error);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
