// The replay command's worker count: --workers over LOB_RTRL_WORKERS over one per core, 0 and
// 1 both the main thread, anything else refused naming where it came from.
import { describe, expect, it } from 'vitest';
import { UsageError, workersOption } from '../../src/cli/options.js';

describe('workersOption', () => {
  it('takes the flag, else the environment, else one per core', () => {
    expect(workersOption(undefined, undefined, 8)).toBe(8);
    expect(workersOption(undefined, '', 8)).toBe(8);
    expect(workersOption(undefined, '3', 8)).toBe(3);
    expect(workersOption('2', '3', 8)).toBe(2);
  });

  it('reads 0 as 1: every symbol on the main thread', () => {
    expect(workersOption('0', undefined, 8)).toBe(1);
    expect(workersOption(undefined, '0', 8)).toBe(1);
  });

  it('refuses what is not a count, naming the flag or the variable', () => {
    expect(() => workersOption('two', undefined, 8)).toThrow(UsageError);
    expect(() => workersOption('two', undefined, 8)).toThrow(/^--workers: .*"two"/);
    expect(() => workersOption(undefined, '-1', 8)).toThrow(/^LOB_RTRL_WORKERS: /);
    expect(() => workersOption('257', undefined, 8)).toThrow(/\[0, 256\]/);
  });
});
