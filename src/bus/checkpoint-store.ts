// Checkpoints every worker can read: the whole state of one partition (every stream's engine)
// at one position of the market-data log, kept in a JetStream object store, with a KV index
// naming each partition's newest. A checkpoint is immutable and named by its position; the
// index only moves forward (compare-and-set on its revision), so an owner that lost its lease
// and writes late can never take a partition back to an older state. Because the learners are
// deterministic, two owners' checkpoints at one position are the same bytes anyway.
import { createHash } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { z } from 'zod';
import { packChunks, unpackChunks } from '../model/state-codec.js';
import { isRevisionConflict, type BusConnection } from './market-log.js';

export interface StreamState {
  readonly venue: string;
  readonly symbol: string;
  /** SymbolEngine.getState() */
  readonly state: Uint8Array;
}

export interface PartitionCheckpoint {
  readonly partition: number;
  /** Stream sequence of the last log message applied; consumption resumes after it. */
  readonly lastSequence: number;
  readonly configHash: string;
  readonly streams: readonly StreamState[];
}

const indexEntrySchema = z.object({
  lastSequence: z.number().int().min(0),
  object: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  configHash: z.string().min(1),
});

const headerSchema = z.object({
  partition: z.number().int().min(0),
  lastSequence: z.number().int().min(0),
  configHash: z.string().min(1),
  streams: z.array(z.object({ venue: z.string(), symbol: z.string() })),
});

export class SharedCheckpointStore {
  private constructor(
    private readonly index: KV,
    private readonly objects: ObjectStore,
  ) {}

  static async open(bus: BusConnection): Promise<SharedCheckpointStore> {
    const index = await new Kvm(bus.js).create(bus.names.checkpointIndexBucket, { history: 1 });
    const objects = await new Objm(bus.js).create(bus.names.checkpointObjectBucket);
    return new SharedCheckpointStore(index, objects);
  }

  /**
   * Stores the checkpoint and points the index at it unless the index already holds a later
   * position. Returns true when the index now names this checkpoint. Older objects of the
   * partition are removed once the index moved past them.
   */
  async save(checkpoint: PartitionCheckpoint): Promise<boolean> {
    const header = new TextEncoder().encode(
      JSON.stringify({
        partition: checkpoint.partition,
        lastSequence: checkpoint.lastSequence,
        configHash: checkpoint.configHash,
        streams: checkpoint.streams.map(({ venue, symbol }) => ({ venue, symbol })),
      }),
    );
    const bytes = packChunks([header, ...checkpoint.streams.map((stream) => stream.state)]);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const object = `p${checkpoint.partition}/${String(checkpoint.lastSequence).padStart(16, '0')}`;
    await this.objects.putBlob({ name: object }, bytes);
    const key = `p${checkpoint.partition}`;
    const entry = JSON.stringify({ lastSequence: checkpoint.lastSequence, object, sha256, configHash: checkpoint.configHash });
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.index.get(key);
      const previous = current !== null && current.operation === 'PUT' ? indexEntrySchema.safeParse(safeJson(current.string())) : null;
      if (previous?.success && previous.data.lastSequence >= checkpoint.lastSequence) {
        if (previous.data.object !== object) await this.objects.delete(object).catch(() => undefined);
        return previous.data.object === object;
      }
      try {
        if (current === null) await this.index.create(key, entry);
        else await this.index.update(key, entry, current.revision);
      } catch (error) {
        if (isRevisionConflict(error)) continue;
        throw error;
      }
      if (previous?.success && previous.data.object !== object) await this.objects.delete(previous.data.object).catch(() => undefined);
      return true;
    }
    return false;
  }

  /**
   * The newest checkpoint of `partition`, or null when it has none. One made under another
   * configuration is refused with a clear error rather than loaded.
   */
  async load(partition: number, configHash: string): Promise<PartitionCheckpoint | null> {
    const current = await this.index.get(`p${partition}`);
    if (current === null || current.operation !== 'PUT') return null;
    const entry = indexEntrySchema.safeParse(safeJson(current.string()));
    if (!entry.success) throw new Error(`checkpoint index p${partition}: unreadable`);
    if (entry.data.configHash !== configHash) {
      throw new Error(
        `checkpoint of partition ${partition} was made with another configuration (hash ${entry.data.configHash.slice(0, 12)}…, this worker ${configHash.slice(0, 12)}…): refusing to load it`,
      );
    }
    const bytes = await this.objects.getBlob(entry.data.object);
    if (bytes === null) throw new Error(`checkpoint of partition ${partition}: object ${entry.data.object} is missing`);
    if (createHash('sha256').update(bytes).digest('hex') !== entry.data.sha256) throw new Error(`checkpoint of partition ${partition}: checksum mismatch`);
    const [headerBytes, ...states] = unpackChunks(bytes);
    const header = headerSchema.parse(safeJson(new TextDecoder().decode(headerBytes)));
    if (header.streams.length !== states.length) throw new Error(`checkpoint of partition ${partition}: ${states.length} states for ${header.streams.length} streams`);
    return {
      partition,
      lastSequence: header.lastSequence,
      configHash: header.configHash,
      streams: header.streams.map((stream, i) => ({ ...stream, state: states[i] })),
    };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
