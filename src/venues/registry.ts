// Every venue and file format, registered in one place. Entry points look sources up here
// by id; nothing else knows the list.
import { binance, binanceUsdm } from './binance.js';
import { binanceRaw } from './binance-raw.js';
import { bybit } from './bybit.js';
import { canonical, canonicalJsonl } from './canonical.js';
import { coinbase } from './coinbase.js';
import { kraken } from './kraken.js';
import { krakenV2 } from './kraken-v2.js';
import { lobster } from './lobster.js';
import { okx } from './okx.js';
import { tardisCsv } from './tardis-csv.js';
import type { FileFormat, Venue } from './types.js';

export const venues: Readonly<Record<string, Venue>> = {
  binance,
  'binance-usdm': binanceUsdm,
  bybit,
  coinbase,
  kraken,
  'kraken-v2': krakenV2,
  okx,
  canonical,
};

export const fileFormats: Readonly<Record<string, FileFormat>> = {
  canonical: canonicalJsonl,
  lobster,
  'binance-raw': binanceRaw,
  'tardis-csv': tardisCsv,
};

export function venueById(id: string): Venue {
  const venue = venues[id];
  if (!venue) throw new Error(`venue: unknown venue "${id}" (expected one of ${Object.keys(venues).join(', ')})`);
  return venue;
}

export function fileFormatById(id: string): FileFormat {
  const format = fileFormats[id];
  if (!format) throw new Error(`format: unknown format "${id}" (expected one of ${Object.keys(fileFormats).join(', ')})`);
  return format;
}
