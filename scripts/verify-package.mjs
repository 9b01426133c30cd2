#!/usr/bin/env node
// Verifies the npm package as a user gets it: `npm pack`, install the tarball into an empty
// folder, then run the installed `lob-rtrl`: `--version`, a replay of the bundled recording, and
// `serve` answering /healthz and its dashboard at /, stopped cleanly by SIGTERM.
// Usage: node scripts/verify-package.mjs        (npm run verify:package)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => process.stdout.write(`${line}\n`);
const problems = [];
const work = mkdtempSync(join(tmpdir(), 'lob-rtrl-package-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(command, args, options = {}) {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

try {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  say('building and packing');
  run(npm, ['run', 'build'], { cwd: root });
  const packed = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', work], { cwd: root }));
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((file) => file.path);
  for (const needed of [
    'dist/src/cli/main.js',
    'src/http/dashboard/index.html',
    'migrations/001_initial.sql',
    'fixtures/binance/spot_btcusdt_20240808.head3000.gz',
    'LICENSE',
    'binding.gyp',
    'native/addon.cc',
    'scripts/build-native.mjs',
  ]) {
    if (!files.includes(needed)) problems.push(`the tarball lacks ${needed}`);
  }
  if (files.some((file) => file.startsWith('test/') || file.startsWith('fixtures/lobster'))) problems.push('the tarball carries test files or test fixtures');
  say(`packed ${packed[0].filename}: ${files.length} files, ${(packed[0].size / 1024).toFixed(0)} KiB`);

  const app = join(work, 'app');
  run('mkdir', ['-p', app]);
  run(npm, ['init', '-y'], { cwd: app });
  say('installing the tarball into an empty folder (compiles better-sqlite3 when no prebuilt binary fits)');
  run(npm, ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
  const cli = join(app, 'node_modules/.bin/lob-rtrl');

  const printed = run(cli, ['--version']).trim();
  if (printed !== version) problems.push(`lob-rtrl --version printed "${printed}", expected ${version}`);
  else say(`lob-rtrl --version: ${printed}`);

  const recording = join(app, 'node_modules/lob-rtrl/fixtures/binance/spot_btcusdt_20240808.head3000.gz');
  const report = join(work, 'report.json');
  run(cli, ['replay', recording, '--format', 'binance-raw', '--models', 'logistic,majority', '--report', report], { cwd: app });
  const replayed = JSON.parse(readFileSync(report, 'utf8'));
  if (!(replayed.accepted > 0)) problems.push(`replay accepted ${replayed.accepted} snapshots`);
  else say(`lob-rtrl replay: ${replayed.accepted} snapshots accepted`);
  // The install script built the native RTRL kernel inside the installed package.
  if (!/^native-/.test(replayed.kernel ?? '')) problems.push(`the installed package runs the "${replayed.kernel}" RTRL kernel, not the native one its install should have built`);
  else say(`RTRL kernel: ${replayed.kernel}`);

  say('serving');
  const server = spawn(cli, ['serve', '--host', '127.0.0.1', '--port', '0', '--db', join(work, 'serve.sqlite'), '--models', 'logistic,majority'], {
    cwd: app,
    env: { ...process.env, LOB_RTRL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const address = await new Promise((resolveAddress, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error('serve did not log "lob-rtrl serving" within 60 s')), 60_000);
    server.stdout.setEncoding('utf8').on('data', (chunk) => {
      buffered += chunk;
      for (const line of buffered.split('\n')) {
        try {
          const parsed = JSON.parse(line);
          if (parsed.msg === 'lob-rtrl serving') {
            clearTimeout(timer);
            resolveAddress(parsed.address);
          }
        } catch {
          // a partial line
        }
      }
    });
    server.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
  });
  const health = await fetch(`${address}/healthz`);
  if (health.status !== 200) problems.push(`/healthz answered ${health.status}`);
  const page = await fetch(`${address}/`);
  const html = await page.text();
  if (page.status !== 200 || !html.includes('<html')) problems.push(`/ answered ${page.status}: ${html.slice(0, 120)}`);
  else say('lob-rtrl serve: /healthz 200, dashboard at / 200');
  server.kill('SIGTERM');
  const code = await new Promise((resolveCode) => server.once('exit', resolveCode));
  if (code !== 0) problems.push(`serve exited with ${code} after SIGTERM`);
} catch (error) {
  problems.push(error instanceof Error ? error.message : String(error));
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const problem of problems) say(`FAIL ${problem}`);
  process.exit(1);
}
say('package OK');
