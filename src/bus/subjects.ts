// Subjects of the market-data log and the prediction stream, and the partition of a stream.
//   <prefix>.md.<partition>.<venue>.<symbol>     market data, one subject per stream
//   <prefix>.pred.<venue>.<symbol>               predictions
// A stream (venue plus symbol) always hashes to the same partition, so one owner sees all of
// its messages in log order. Symbols may hold characters a subject token cannot (`.` above
// all); they are escaped, reversibly.

/** Characters a token keeps as they are; anything else becomes `~` and two hex digits. */
const PLAIN = /^[A-Za-z0-9_-]$/;

export function subjectToken(text: string): string {
  let token = '';
  for (const char of text) {
    if (PLAIN.test(char)) token += char;
    else for (const byte of Buffer.from(char, 'utf8')) token += `~${byte.toString(16).padStart(2, '0')}`;
  }
  return token;
}

export function fromSubjectToken(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '~') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(token.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** FNV-1a over venue, a separator and symbol: stable across processes, versions and machines. */
export function partitionOf(venue: string, symbol: string, partitions: number): number {
  let hash = 0x811c9dc5;
  const text = `${venue}\u0000${symbol}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}

export function marketSubject(prefix: string, partition: number, venue: string, symbol: string): string {
  return `${prefix}.md.${partition}.${subjectToken(venue)}.${subjectToken(symbol)}`;
}

/** Every stream of one partition (what its owner consumes). */
export function partitionFilter(prefix: string, partition: number): string {
  return `${prefix}.md.${partition}.>`;
}

/** A disconnect of every symbol of a venue travels on this subject of each partition. */
export function venueWideSubject(prefix: string, partition: number, venue: string): string {
  return `${prefix}.md.${partition}.${subjectToken(venue)}.~2a`;
}

export function predictionSubject(prefix: string, venue: string, symbol: string): string {
  return `${prefix}.pred.${subjectToken(venue)}.${subjectToken(symbol)}`;
}
