// Every test file gets its own temporary folder, removed when the file is done: whatever the
// file and the processes it spawns create through os.tmpdir() (databases, recordings, browser
// profiles, NATS stores) lands inside it, so a test run leaves nothing in the system's
// temporary directory, even when a test fails half-way or kills a child with SIGKILL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const systemTemp = tmpdir();
const fileTemp = mkdtempSync(join(systemTemp, 'lob-rtrl-test-'));
process.env.TMPDIR = fileTemp;

afterAll(() => {
  process.env.TMPDIR = systemTemp;
  rmSync(fileTemp, { recursive: true, force: true, maxRetries: 3 });
});
