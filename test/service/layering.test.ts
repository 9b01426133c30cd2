// The service below the entry points knows no stand-in: `serve` chooses the demo feed
// (src/cli/demo-feed.ts) and hands the runtime an ordinary feed. Read from the sources, so a
// stray import fails here rather than in review.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '../../src');

function sourcesUnder(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourcesUnder(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module specifier a file imports (static and dynamic). */
function importsOf(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*)['"]([^'"]+)['"]/g)].map((match) => match[1]);
}

describe('layering', () => {
  it('no module of the service, the engine, the store or the HTTP routes imports a venue stand-in', () => {
    const offenders: string[] = [];
    for (const layer of ['service', 'engine', 'store', 'http', 'model', 'domain', 'ingest']) {
      for (const file of sourcesUnder(join(src, layer))) {
        for (const specifier of importsOf(file)) if (specifier.includes('/standin/')) offenders.push(`${relative(src, file)} imports ${specifier}`);
      }
    }
    expect(offenders).toEqual([]);
    // The one place that does: the entry point's demo feed.
    expect(importsOf(join(src, 'cli/demo-feed.ts'))).toContain('../standin/server.js');
  });
});
