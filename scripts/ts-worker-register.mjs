// Lets a worker thread started from the TypeScript sources (under vitest, which transforms
// only its own module graph) load .ts modules: passed as `--import` in the worker's execArgv
// by src/engine/worker-pool.ts when that module itself runs as .ts. Built code never uses it.
import { register } from 'node:module';

register('./ts-worker-hooks.mjs', import.meta.url);
