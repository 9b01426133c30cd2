// The JetStream side of the distributed mode: the connection, the two streams (the market-data
// log and the predictions) and the publisher the ingest role writes the log with. JetStream is
// the log and its de-duplication: a message is published with its id and counted as stored
// only once the server acknowledged it, so nothing acknowledged is ever lost with the ingest.
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type PubAck, type StreamConfig } from '@nats-io/jetstream';
import { messageOf } from '../domain/json-edge.js';
import { redactUrl } from '../domain/redact.js';
import type { BookSnapshot, Disconnect, OrderEvent, Trade } from '../domain/types.js';
import { encodeLogged, MarketMessageIds } from './codec.js';
import { busNames, type BusConfig, type BusNames } from './config.js';
import { marketSubject, partitionOf, venueWideSubject } from './subjects.js';

/** A KV write refused because the key changed since it was read (the compare-and-set lost). */
export function isRevisionConflict(error: unknown): boolean {
  return /wrong last sequence|key exists/i.test(messageOf(error));
}

/** A failure of the distributed mode's setup, worded for one log line (the URL redacted). */
export class BusError extends Error {
  override readonly name = 'BusError';
}

export interface BusConnection {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: BusNames;
  readonly config: BusConfig;
  close(): Promise<void>;
}

/**
 * Connects to NATS and makes sure both streams exist with the configured limits. Reconnects
 * forever once connected (a NATS restart is survived); the first connection is tried for
 * `connectTimeoutMs` and fails with one clear line.
 */
export async function connectBus(config: BusConfig, options: { name: string; connectTimeoutMs?: number }): Promise<BusConnection> {
  if (config.natsUrl === undefined) throw new BusError('natsUrl (LOB_RTRL_NATS_URL): not set, the distributed mode needs a NATS server');
  const servers = config.natsUrl.split(',').map((server) => server.trim());
  // nats://user:password@host:port: the credentials go to the client as options, never into a
  // server list that might be printed.
  let user: string | undefined;
  let pass: string | undefined;
  const hosts = servers.map((server) => {
    const match = /^([a-z]+:\/\/)([^@/]*)@(.*)$/.exec(server);
    if (match === null) return server;
    const [name, password] = match[2].split(':');
    user = decodeURIComponent(name);
    pass = password === undefined ? undefined : decodeURIComponent(password);
    return match[1] + match[3];
  });
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: hosts,
      user,
      pass,
      name: options.name,
      timeout: options.connectTimeoutMs ?? 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: false,
    });
  } catch (error) {
    throw new BusError(`NATS at ${servers.map(redactUrl).join(',')} unreachable: ${messageOf(error)}`);
  }
  const names = busNames(config.natsPrefix);
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    // Both streams keep the same retention and de-duplication window; predictions are the
    // output, not the record, and stay only as long as the input that made them.
    const limits = {
      max_age: nanos(config.natsMaxAgeSeconds * 1000),
      max_bytes: config.natsMaxBytes === 0 ? -1 : config.natsMaxBytes,
      duplicate_window: nanos(config.natsDuplicateWindowSeconds * 1000),
    };
    await ensureStream(jsm, { name: names.marketStream, subjects: [names.marketSubjects], ...limits });
    await ensureStream(jsm, { name: names.predictionStream, subjects: [names.predictionSubjects], ...limits });
    return { nc, js: jetstream(nc, { timeout: 10_000 }), jsm, names, config, close: () => nc.drain().catch(() => nc.close()) };
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw new BusError(
      `NATS at ${servers.map(redactUrl).join(',')}: JetStream not usable (is the server started with -js, and may this user manage streams ${names.marketStream} and ${names.predictionStream}?): ${messageOf(error)}`,
    );
  }
}

/** Creates the stream, or brings an existing one's limits to the configured ones. */
async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    const info = await jsm.streams.info(config.name);
    const current = info.config;
    if (current.max_age !== config.max_age || current.max_bytes !== config.max_bytes || current.duplicate_window !== config.duplicate_window) {
      await jsm.streams.update(config.name, { ...current, max_age: config.max_age, max_bytes: config.max_bytes, duplicate_window: config.duplicate_window });
    }
  } catch (error) {
    if (!/stream not found/i.test(messageOf(error))) throw error;
    await jsm.streams.add(config);
  }
}

export type LoggableMessage = BookSnapshot | Trade | OrderEvent | Disconnect;

/**
 * Writes market messages to the log in arrival order per stream. `publish` resolves once
 * JetStream stored the message (or recognised it as a duplicate): the moment the ingest may
 * call it acknowledged. A disconnect of a whole venue goes to every partition.
 */
export class MarketLogPublisher {
  published = 0;
  duplicates = 0;
  private readonly ids = new MarketMessageIds();

  constructor(private readonly bus: BusConnection) {}

  async publish(venue: string, message: LoggableMessage): Promise<PubAck[]> {
    const { natsPrefix: prefix, natsPartitions: partitions } = this.bus.config;
    const encoded = encodeLogged(venue, message);
    const id = this.ids.next(venue, encoded);
    const subjects =
      message.type === 'disconnect' && message.symbol === null
        ? Array.from({ length: partitions }, (_, partition) => venueWideSubject(prefix, partition, venue))
        : [marketSubject(prefix, partitionOf(venue, message.symbol as string, partitions), venue, message.symbol as string)];
    const acks: PubAck[] = [];
    for (const [i, subject] of subjects.entries()) {
      const ack = await this.bus.js.publish(subject, encoded, { msgID: subjects.length > 1 ? `${id}:${i}` : id, timeout: 10_000 });
      if (ack.duplicate) this.duplicates++;
      else this.published++;
      acks.push(ack);
    }
    return acks;
  }
}
