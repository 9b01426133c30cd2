// `lob-rtrl replay --json` through the built CLI on the recorded LOBSTER excerpt: the summary
// is the --report document, parseable, with the package version and every model's figures.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot, packageVersion } from '../../src/domain/package-root.js';
import { ensureBuilt } from '../service/spawned-service.js';

const archive = join(import.meta.dirname, '../../fixtures/lobster/LOBSTER_excerpt_AMZN_2012-06-21_5_first300.zip');

function replay(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(packageRoot(), 'dist/src/cli/main.js'), 'replay', ...args], (_error, stdout, stderr) =>
      resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

describe('lob-rtrl replay --json', () => {
  beforeAll(ensureBuilt, 180_000);

  it('prints the report document on stdout, the same as --report writes, and the progress on stderr', async () => {
    const reportPath = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-replay-json-')), 'report.json');
    const { code, stdout, stderr } = await replay([archive, '--format', 'lobster', '--levels', '5', '--models', 'logistic,majority', '--json', '--report', reportPath]);
    expect(code, stderr).toBe(0);
    const printed = JSON.parse(stdout) as {
      version: string;
      accepted: number;
      symbols: Array<{ symbol: string; models: Array<{ name: string; n: number; accuracy: number }> }>;
      wallSeconds: number;
      eventsPerSecond: number;
      stepLatencyUs: unknown;
    };
    const written = JSON.parse(readFileSync(reportPath, 'utf8')) as typeof printed;
    expect(printed).toEqual(written);
    expect(printed.version).toBe(packageVersion());
    expect(printed.accepted).toBeGreaterThan(100);
    expect(printed.symbols.map((s) => s.symbol)).toEqual(['AMZN']);
    expect(printed.symbols[0].models.map((m) => m.name)).toEqual(['logistic', 'majority']);
    for (const model of printed.symbols[0].models) expect(model.n).toBeGreaterThan(0);
    expect(stderr).toMatch(/replay: done, [\d,]+ events in/);
  });
});
