// Read throughput of the file sources over the full recordings in ../shared/data (not part
// of the product repo). Run after a build:
//   npx tsc -p tsconfig.build.json && node dist/bench/file-sources.js
// LOB_SHARED_DATA overrides where the recordings are looked for.
import { reportSource } from './drain.js';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { canonicalJsonl } from '../src/venues/canonical.js';
import { lobster } from '../src/venues/lobster.js';
import { tardisCsv } from '../src/venues/tardis-csv.js';
import type { FileFormat } from '../src/venues/types.js';

interface Case {
  readonly label: string;
  readonly format: FileFormat;
  readonly path: string;
  readonly levels: number;
}

const cases: Case[] = [
  { label: 'lobster AMZN level 5, full zip (155,935 rows)', format: lobster, path: 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip', levels: 5 },
  { label: 'lobster AAPL level 1, full zip (118,497 rows)', format: lobster, path: 'lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip', levels: 1 },
  { label: 'tardis-csv book_snapshot_25 sample (10 rows)', format: tardisCsv, path: 'tardis/binance-futures_book_snapshot_25_BTCUSDT.csv', levels: 25 },
];

/** Prints the read throughput of each file source over `dataDir`, or what is absent. */
export async function benchFileSources(dataDir: string): Promise<void> {
  if (!existsSync(dataDir)) {
    console.log(`file-sources bench: recordings not found at ${dataDir} (set LOB_SHARED_DATA); nothing measured.`);
    return;
  }
  console.log(`file-sources bench, node ${process.version}, data ${dataDir}`);
  for (const { label, format, path, levels } of cases) {
    const full = resolve(dataDir, path);
    if (!existsSync(full)) {
      console.log(`${label}: ABSENT (${full}), skipped`);
      continue;
    }
    await reportSource(label, format, [full], levels);
  }
  await benchCanonical(dataDir);
}

/** Canonical JSONL: written from the AMZN rows through toCanonicalJson, then read back. */
async function benchCanonical(dataDir: string): Promise<void> {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { toCanonicalJson } = await import('../src/venues/canonical.js');
  const zip = resolve(dataDir, 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip');
  if (!existsSync(zip)) return;
  const lines: string[] = [];
  for await (const message of lobster.read([zip], { levels: 5 })) {
    if (message.type === 'book_snapshot') lines.push(toCanonicalJson(message));
  }
  const dir = await mkdtemp(resolve(tmpdir(), 'lob-bench-'));
  try {
    const file = resolve(dir, 'amzn.jsonl');
    await writeFile(file, `${lines.join('\n')}\n`);
    await reportSource(`canonical JSONL from AMZN (${lines.length} lines)`, canonicalJsonl, [file], 5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchFileSources(resolve(process.env.LOB_SHARED_DATA ?? resolve(process.cwd(), '../shared/data')));
}
