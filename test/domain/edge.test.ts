// The two edge helpers everything untrusted goes through: bounded JSON parsing and describing a
// value that may be built to break whoever prints it; and URL redaction.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeUntrusted, firstTooDeep, parseJsonBounded } from '../../src/domain/json-edge.js';
import { isSecretParameter, redactText, redactUrl } from '../../src/domain/redact.js';
import { sampleOf } from '../../src/domain/types.js';

describe('parseJsonBounded', () => {
  it('refuses nesting past the bound, counting only brackets outside strings', () => {
    expect(firstTooDeep('[[[1]]]', 3)).toBe(-1);
    expect(firstTooDeep('[[[[1]]]]', 3)).toBe(3);
    expect(firstTooDeep('{"a":"[[[[[[\\"[[["}', 2)).toBe(-1);
    expect(parseJsonBounded(`${'['.repeat(33)}${']'.repeat(33)}`, 'frame 7')).toEqual({
      ok: false,
      reason: 'too_deep',
      detail: 'frame 7: nested deeper than 32 levels (at character 32)',
    });
    expect(parseJsonBounded('{"symbol":', 'body')).toMatchObject({ ok: false, reason: 'malformed_json', detail: expect.stringMatching(/^body: not valid JSON \(/) });
    expect(parseJsonBounded('{"a":[1,2,{"b":null}]}', 'x')).toEqual({ ok: true, value: { a: [1, 2, { b: null }] } });
  });

  it('agrees with JSON.parse on every value within the bound (fuzzed)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 10 }), (value) => {
        const text = JSON.stringify(value);
        const parsed = parseJsonBounded(text, 'x');
        expect(parsed).toEqual({ ok: true, value: JSON.parse(text) });
      }),
      { numRuns: 300 },
    );
  });
});

describe('describeUntrusted', () => {
  it('never throws and never calls the value: toString keys, getters, proxies, 5,000-deep objects', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 5000; i++) deep = { x: deep };
    const getter = Object.defineProperty({}, 'boom', {
      enumerable: true,
      get: () => {
        throw new Error('called');
      },
    });
    const proxy = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('trap');
        },
      },
    );
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    for (const value of [{ toString: 1, a: deep }, deep, getter, proxy, cyclic, Symbol('s'), () => 1, 10n, undefined, '\ud800']) {
      expect(() => describeUntrusted(value)).not.toThrow();
      expect(() => sampleOf(value)).not.toThrow();
    }
    expect(describeUntrusted({ toString: 1, a: [1, 'b'] })).toBe('{"toString":1,"a":[1,"b"]}');
    expect(describeUntrusted(getter)).toBe('{"boom":(accessor)}');
    expect(describeUntrusted(proxy)).toBe('(a value that cannot be shown)');
    expect(describeUntrusted(deep, 40)).toBe('{"x":{"x":{"x":{"x":{…}}}}}');
    expect(describeUntrusted('x'.repeat(500), 20)).toHaveLength(21);
  });
});

describe('redaction', () => {
  it('hides userinfo and secret-looking query parameters, leaving the rest of the URL as it was', () => {
    expect(redactUrl('wss://alice:hunter2@stream.example.com:9443/ws?streams=btcusdt@depth&apiKey=K123&signature=abc')).toBe(
      'wss://REDACTED@stream.example.com:9443/ws?streams=btcusdt%40depth&apiKey=REDACTED&signature=REDACTED',
    );
    expect(redactUrl('https://api.example.com/api/v3/depth?symbol=BTCUSDT&limit=1000')).toBe('https://api.example.com/api/v3/depth?symbol=BTCUSDT&limit=1000');
    for (const name of ['apiKey', 'api_key', 'access_token', 'token', 'X-Signature', 'secret', 'password', 'passphrase', 'client_secret', 'auth'])
      expect(isSecretParameter(name), name).toBe(true);
    for (const name of ['symbol', 'streams', 'limit', 'depth', 'levels', 'timestamp']) expect(isSecretParameter(name), name).toBe(false);
  });

  it('redacts URLs quoted inside error messages', () => {
    // A value runs to the next space, so a colon right after it goes with it.
    expect(redactText('websocket wss://bob:pw@h:1/ws?token=T: connect ECONNREFUSED 127.0.0.1:1')).toBe(
      'websocket wss://REDACTED@h:1/ws?token=REDACTED connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(redactText('snapshot https://h/api?symbol=X&key=abc&limit=5: 500')).toBe('snapshot https://h/api?symbol=X&key=REDACTED&limit=5: 500');
  });
});
