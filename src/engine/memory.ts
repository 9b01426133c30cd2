// Giving the memory of symbols that went to sleep back to the system. A hibernated symbol's
// typed arrays (the sensitivities alone are 186 KB at the default models) become garbage, but
// two things keep the process's resident size where it was: V8 frees an array's backing store
// only when a major collection finds it dead, and nothing forces one while the heap of small
// objects stays small; and glibc keeps what is freed in its arenas for reuse. Measured with
// 1,000 symbols dropped: 414 MB stayed resident; after a major collection 254 MB; after
// malloc_trim too, 28 MB.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadOnce } from '../model/kernels/select.js';

type Collector = (options?: { type: 'minor' }) => void;

let collector: Collector | null | undefined;

/**
 * A garbage collection of this thread's heap (the main thread's or a worker's): true when it
 * ran. A minor one only visits the young generation: a few milliseconds, enough where what was
 * dropped died young (the states a worker hands over for a checkpoint). Node has no public call
 * for it outside `--expose-gc`; setting that flag at run time makes V8 install `gc` in contexts
 * created afterwards, so a fresh context hands it over without touching the program's globals.
 */
export function collectGarbage(kind: 'major' | 'minor' = 'major'): boolean {
  if (collector === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('typeof gc === "function" ? gc : null');
      collector = typeof gc === 'function' ? (gc as Collector) : null;
    } catch {
      collector = null;
    }
  }
  if (collector === null) return false;
  // Without arguments: measured, gc({ type: 'major' }) left dropped arrays that had reached the
  // old generation in place, where gc() freed them.
  if (kind === 'major') collector();
  else collector({ type: 'minor' });
  return true;
}

/**
 * The allocator's free pages handed back to the kernel, off the event loop (the native addon's
 * malloc_trim on the libuv pool): false without the addon or off glibc, where freed memory
 * stays with the process until it is reused.
 */
export async function releaseFreeMemory(): Promise<boolean> {
  const loaded = loadOnce();
  return loaded.ok ? loaded.addon.releaseFreeMemory() : false;
}

/** What `mapLargeBlocksSeparately` sets: S (186 KB), checkpoint states and large batches are past it, the learners' small arrays are not. */
const LARGE_BLOCK_BYTES = 64 * 1024;

/**
 * For a long-running service whose symbols come and go: large blocks get mappings of their own,
 * so what a sleeping symbol frees leaves no holes in the allocator's arenas that malloc_trim
 * cannot return. Left alone when the operator tuned malloc (MALLOC_MMAP_THRESHOLD_ or
 * GLIBC_TUNABLES). Returns whether it was set.
 */
export function mapLargeBlocksSeparately(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.GLIBC_TUNABLES !== undefined) return false;
  const loaded = loadOnce();
  return loaded.ok ? loaded.addon.mapLargeBlocks(LARGE_BLOCK_BYTES) : false;
}
