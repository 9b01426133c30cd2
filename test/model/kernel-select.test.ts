// Which RTRL kernel runs: the native addon when it loads, the TypeScript one otherwise, and
// LOB_RTRL_KERNEL / --kernel forcing either. The missing and broken addon cases go through the
// real loader, on package folders made here (one without a build, one whose .node file is not
// a shared object); the CLI cases spawn the built lob-rtrl.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/domain/package-root.js';
import { findNativeAddon, loadNativeAddon } from '../../src/model/kernels/native.js';
import { currentRtrlKernel, JS_KERNEL, parseKernelChoice, resolveRtrlKernel } from '../../src/model/kernels/select.js';
import { RtrlLearner } from '../../src/model/rtrl.js';
import { defaultRecurrentConfig } from '../../src/model/recurrent-config.js';
import { ConfigError, loadServiceConfig } from '../../src/service/config.js';
import { ensureBuilt } from '../service/spawned-service.js';

function packageFolder(withAddon?: string): string {
  const root = mkdtempSync(join(tmpdir(), 'lob-rtrl-kernel-'));
  writeFileSync(join(root, 'package.json'), '{"name":"lob-rtrl"}');
  if (withAddon !== undefined) {
    mkdirSync(join(root, 'build/Release'), { recursive: true });
    writeFileSync(join(root, 'build/Release/lob_rtrl_native.node'), withAddon);
  }
  return root;
}

describe('kernel selection', () => {
  it('auto runs the native kernel where the addon is built (it is, by npm ci)', () => {
    const kernel = resolveRtrlKernel('auto');
    expect(kernel.name).toMatch(/^native-(avx512|avx2|baseline)$/);
    expect(kernel.native?.supportedIsas).toContain(kernel.name.slice('native-'.length));
    expect(kernel.fallbackReason).toBeUndefined();
    expect(resolveRtrlKernel('native').name).toBe(kernel.name);
  });

  it('js is the TypeScript kernel even where the addon is built', () => {
    expect(resolveRtrlKernel('js')).toBe(JS_KERNEL);
    expect(
      new RtrlLearner({ ...defaultRecurrentConfig, inputs: 3, classes: 3, pending: { kind: 'fifo', capacity: 1 } }, undefined, 'rtrl', resolveRtrlKernel('js')).kernel.name,
    ).toBe('js');
  });

  it('with no addon built, auto falls back to TypeScript and says why; native forced is an error', () => {
    const root = packageFolder();
    expect(findNativeAddon(root)).toBeUndefined();
    const load = () => loadNativeAddon(findNativeAddon(root));
    const fallback = resolveRtrlKernel('auto', load);
    expect(fallback.name).toBe('js');
    expect(fallback.native).toBeUndefined();
    expect(fallback.fallbackReason).toMatch(/lob_rtrl_native\.node was not built/);
    expect(() => resolveRtrlKernel('native', load)).toThrow(/^kernel: native was asked for \(LOB_RTRL_KERNEL=native\) but .*was not built/);
  });

  it('an addon file that does not load is reported, not thrown, and auto falls back', () => {
    const root = packageFolder('not a shared object');
    const path = findNativeAddon(root);
    expect(path).toBe(join(root, 'build/Release/lob_rtrl_native.node'));
    const loaded = loadNativeAddon(path);
    expect(loaded.ok).toBe(false);
    if (!loaded.ok) expect(loaded.reason).toMatch(/failed to load/);
    expect(resolveRtrlKernel('auto', () => loaded).name).toBe('js');
  });

  it('parses LOB_RTRL_KERNEL: unset or empty is auto, anything but auto|js|native is refused', () => {
    expect(parseKernelChoice(undefined)).toBe('auto');
    expect(parseKernelChoice('')).toBe('auto');
    expect(parseKernelChoice('js')).toBe('js');
    expect(parseKernelChoice('native')).toBe('native');
    expect(() => parseKernelChoice('avx2')).toThrow('LOB_RTRL_KERNEL: must be one of auto, js, native, got "avx2"');
  });

  it('the process kernel follows LOB_RTRL_KERNEL (CI runs the kernel tests with it set to js)', () => {
    expect(currentRtrlKernel()).toEqual(resolveRtrlKernel(parseKernelChoice(process.env.LOB_RTRL_KERNEL)));
  });

  it('the service configuration reads kernel from LOB_RTRL_KERNEL and refuses other values', () => {
    expect(loadServiceConfig({}).kernel).toBe('auto');
    expect(loadServiceConfig({ env: { LOB_RTRL_KERNEL: 'js' } }).kernel).toBe('js');
    expect(loadServiceConfig({ flags: { kernel: 'native' } }).kernel).toBe('native');
    expect(() => loadServiceConfig({ env: { LOB_RTRL_KERNEL: 'fast' } })).toThrow(ConfigError);
    expect(() => loadServiceConfig({ env: { LOB_RTRL_KERNEL: 'fast' } })).toThrow(/^kernel \(LOB_RTRL_KERNEL\): /);
  });
});

describe('lob-rtrl replay names its kernel', () => {
  beforeAll(ensureBuilt, 180_000);
  const fixture = join(packageRoot(), 'fixtures/canonical/amzn-2012-06-21-first300.jsonl');

  function replay(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; report: { kernel?: string } | undefined }> {
    const report = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-kernel-report-')), 'report.json');
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [
          join(packageRoot(), 'dist/src/cli/main.js'),
          'replay',
          fixture,
          '--format',
          'canonical',
          '--levels',
          '5',
          '--models',
          'rtrl,majority',
          '--hidden',
          '5',
          '--no-progress',
          '--report',
          report,
          ...args,
        ],
        { env: { ...process.env, ...env } },
        (_error, _stdout, stderr) => {
          let parsed: { kernel?: string } | undefined;
          try {
            parsed = JSON.parse(readFileSync(report, 'utf8')) as { kernel?: string };
          } catch {
            parsed = undefined;
          }
          resolve({ code: child.exitCode, stderr, report: parsed });
        },
      );
    });
  }

  it('forced to js by LOB_RTRL_KERNEL, native by --kernel (which wins), in the log line and the report', async () => {
    const js = await replay([], { LOB_RTRL_KERNEL: 'js' });
    expect(js.code).toBe(0);
    expect(js.stderr).toMatch(/^RTRL kernel: js\n/);
    expect(js.report?.kernel).toBe('js');
    const native = await replay(['--kernel', 'native'], { LOB_RTRL_KERNEL: 'js' });
    expect(native.code).toBe(0);
    expect(native.stderr).toMatch(/^RTRL kernel: native-(avx512|avx2|baseline)\n/);
    expect(native.report?.kernel).toBe(native.stderr.split('\n')[0].slice('RTRL kernel: '.length));
  });

  it('a bad choice exits 2 naming where it came from', async () => {
    const fromEnv = await replay([], { LOB_RTRL_KERNEL: 'fast' });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/LOB_RTRL_KERNEL: must be one of auto, js, native, got "fast"/);
    const fromFlag = await replay(['--kernel', 'fast'], {});
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toMatch(/--kernel: must be one of auto, js, native, got "fast"/);
  });
});
