// The built native addon for the kernel tests, which must not fall back to TypeScript: a missing
// build fails them with the way to build it. The ISA a test file selects is put back after it.
import { afterAll } from 'vitest';
import { findNativeAddon, loadNativeAddon, type NativeRtrlAddon } from '../../src/model/kernels/native.js';

export function requireAddonForFile(): NativeRtrlAddon {
  const loaded = loadNativeAddon(findNativeAddon());
  if (!loaded.ok) throw new Error(`the native addon must be built for this test (npm ci, or npx node-gyp rebuild): ${loaded.reason}`);
  const addon = loaded.addon;
  const initialIsa = addon.isa();
  afterAll(() => addon.select(initialIsa));
  return addon;
}
