// JSON at the edge, where the text comes from someone we do not trust. Two things must never
// happen there: a value nested deeply enough to overflow the stack of whatever walks it next
// (zod, JSON.stringify, our own code), and an error path that throws while describing the bad
// input. Everything that parses untrusted JSON goes through `parseJsonBounded`; everything that
// quotes untrusted input in a message goes through `describeUntrusted`.

/**
 * Deepest nesting any lob-rtrl message needs is 4 (an array of snapshots, a snapshot, a side,
 * a level); 32 leaves room for venue envelopes and is still far from any stack limit.
 */
export const MAX_JSON_DEPTH = 32;

export type BoundedJson = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: 'malformed_json' | 'too_deep'; readonly detail: string };

/**
 * The position of the first bracket that opens nesting level `maxDepth + 1`, or -1 when the
 * text never nests deeper than `maxDepth`. Brackets inside strings do not count. One pass over
 * the characters, no allocation: it runs before JSON.parse on every frame.
 */
export function firstTooDeep(text: string, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return -1;
}

/**
 * True when `value` nests deeper than `maxDepth` (a scalar has depth 0). Iterative, and it stops
 * at the first too-deep branch: for values parsed already, before anything recursive walks them.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: Array<{ value: object; depth: number }> = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const { value: node, depth } = stack.pop() as { value: object; depth: number };
    if (depth > maxDepth) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: depth + 1 });
    }
  }
  return false;
}

/**
 * JSON.parse behind a depth bound; never throws. `what` names the input in the error. The
 * bound is checked on the text first: V8 parses even a 500,000-deep array, but spends a third
 * of a second building it, which a network frame must not cost.
 */
export function parseJsonBounded(text: string, what: string, maxDepth = MAX_JSON_DEPTH): BoundedJson {
  const deep = firstTooDeep(text, maxDepth);
  if (deep >= 0) {
    return { ok: false, reason: 'too_deep', detail: `${what}: nested deeper than ${maxDepth} levels (at character ${deep})` };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: 'malformed_json', detail: `${what}: not valid JSON (${messageOf(error)})` };
  }
}

/**
 * A short, printable rendering of any value, for logs and error frames. Never throws and never
 * calls the value's own methods (`toString`, `toJSON`, getters): a hostile `{"toString": 1}`
 * or a 5,000-deep object renders like any other value, cut at `maxChars` and `maxDepth`.
 */
export function describeUntrusted(value: unknown, maxChars = 200, maxDepth = 4): string {
  try {
    const out: string[] = [];
    const budget = { left: maxChars + 1 };
    render(value, maxDepth, out, budget);
    const text = out.join('');
    return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  } catch {
    return '(a value that cannot be shown)';
  }
}

function render(value: unknown, depth: number, out: string[], budget: { left: number }): void {
  if (budget.left <= 0) return;
  const emit = (text: string) => {
    out.push(text);
    budget.left -= text.length;
  };
  switch (typeof value) {
    case 'string':
      emit(JSON.stringify(value.length > budget.left ? value.slice(0, budget.left) : value));
      return;
    case 'number':
    case 'boolean':
    case 'bigint':
      emit(String(value));
      return;
    case 'undefined':
      emit('undefined');
      return;
    case 'symbol':
    case 'function':
      emit(`(${typeof value})`);
      return;
  }
  if (value === null) {
    emit('null');
    return;
  }
  if (depth === 0) {
    emit(Array.isArray(value) ? '[…]' : '{…}');
    return;
  }
  if (Array.isArray(value)) {
    emit('[');
    for (let i = 0; i < value.length && budget.left > 0; i++) {
      if (i > 0) emit(',');
      render(value[i], depth - 1, out, budget);
    }
    emit(']');
    return;
  }
  emit('{');
  let first = true;
  // Own enumerable data properties only: a getter or a proxy trap is never run.
  for (const key of Object.keys(value as object)) {
    if (budget.left <= 0) break;
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (!first) emit(',');
    first = false;
    emit(`${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}:`);
    if (descriptor && 'value' in descriptor) render(descriptor.value, depth - 1, out, budget);
    else emit('(accessor)');
  }
  emit('}');
}

/** The message of anything thrown, without trusting it to be an Error. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return describeUntrusted(error, 200);
}
