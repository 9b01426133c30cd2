// Who owns which partition, decided by NATS itself: a lease is a key of a JetStream KV bucket
// whose entries expire after the lease time. Taking a free partition is `create` (it fails if
// the key exists), renewing is `update` against the revision we hold (it fails if anyone else
// wrote the key since), so two workers can never both believe they renewed the same lease.
// An owner that stops renewing (killed, partitioned away, stalled) loses the key when the bucket's
// age limit removes it, and the next worker's `create` succeeds. No consensus of our own.
import { Kvm, type KV } from '@nats-io/kv';
import { isRevisionConflict, type BusConnection } from './market-log.js';

export interface HeldLease {
  readonly partition: number;
  revision: number;
}

export class PartitionLeases {
  private constructor(
    private readonly kv: KV,
    readonly workerId: string,
  ) {}

  static async open(bus: BusConnection, workerId: string): Promise<PartitionLeases> {
    const kv = await new Kvm(bus.js).create(bus.names.leaseBucket, { history: 1, ttl: bus.config.natsLeaseSeconds * 1000 });
    return new PartitionLeases(kv, workerId);
  }

  /** The lease of `partition` when it is free, else null (someone holds it). */
  async tryAcquire(partition: number): Promise<HeldLease | null> {
    try {
      const revision = await this.kv.create(leaseKey(partition), JSON.stringify({ owner: this.workerId, since: Date.now() }));
      return { partition, revision };
    } catch (error) {
      if (isRevisionConflict(error)) return null;
      throw error;
    }
  }

  /** Extends the lease; false when it was lost (expired and taken, or written by another). */
  async renew(lease: HeldLease): Promise<boolean> {
    try {
      lease.revision = await this.kv.update(leaseKey(lease.partition), JSON.stringify({ owner: this.workerId, renewed: Date.now() }), lease.revision);
      return true;
    } catch (error) {
      if (isRevisionConflict(error)) return false;
      throw error;
    }
  }

  /** Gives the partition up at once (a clean shutdown or a rebalance), if still ours. */
  async release(lease: HeldLease): Promise<void> {
    try {
      await this.kv.delete(leaseKey(lease.partition), { previousSeq: lease.revision });
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
    }
  }

  /** The worker's own heartbeat, so every worker can count the live ones and take its share. */
  async heartbeat(): Promise<void> {
    await this.kv.put(`w.${this.workerId}`, JSON.stringify({ at: Date.now() }));
  }

  async liveWorkers(): Promise<number> {
    let count = 0;
    for await (const _key of await this.kv.keys('w.*')) count++;
    return Math.max(1, count);
  }

  async ownerOf(partition: number): Promise<string | null> {
    const entry = await this.kv.get(leaseKey(partition));
    if (entry === null || entry.operation !== 'PUT') return null;
    try {
      return String((JSON.parse(entry.string()) as { owner?: unknown }).owner ?? '');
    } catch {
      return '';
    }
  }

  async leaveCluster(): Promise<void> {
    await this.kv.delete(`w.${this.workerId}`).catch(() => undefined);
  }
}

function leaseKey(partition: number): string {
  return `p${partition}`;
}
