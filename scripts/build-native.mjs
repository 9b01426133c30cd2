// `npm ci` / `npm install` runs this (the package's install script): it builds the native RTRL
// kernels with node-gyp for the Node that runs npm (node-gyp takes the headers from
// npm_config_nodedir when set, as npm passes it). A failed build never fails the install: the
// service then runs the TypeScript kernel and says so at start.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(resolve(root, 'binding.gyp'))) process.exit(0);

// npm puts its bundled node-gyp on PATH for lifecycle scripts and names it in npm_config_node_gyp.
const bundled = process.env.npm_config_node_gyp;
const command = bundled && existsSync(bundled) ? [process.execPath, [bundled, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(command[0], command[1], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (result.status === 0) {
  console.log('lob-rtrl: native RTRL kernel built (build/Release/lob_rtrl_native.node)');
} else {
  const why = result.error ? result.error.message : `node-gyp exited with ${result.status ?? result.signal}`;
  console.warn(`lob-rtrl: the native RTRL kernel was not built (${why}); the TypeScript kernel will run instead.`);
}
