// The NATS connection of the command-line tools (publish, predictions): flags over LOB_RTRL_NATS_*,
// and any problem with either worded as a usage error in one line.
import { busConfig } from '../bus/config.js';
import { BusError, connectBus, type BusConnection } from '../bus/market-log.js';
import { UsageError } from './options.js';

export interface BusFlags {
  natsUrl?: string;
  natsPrefix?: string;
  natsPartitions?: string;
}

export async function connectBusFromFlags(flags: BusFlags, name: string): Promise<BusConnection> {
  let config;
  try {
    config = busConfig({
      natsUrl: flags.natsUrl ?? process.env.LOB_RTRL_NATS_URL,
      natsPrefix: flags.natsPrefix ?? process.env.LOB_RTRL_NATS_PREFIX,
      natsPartitions: Number(flags.natsPartitions ?? process.env.LOB_RTRL_NATS_PARTITIONS ?? 8),
    });
  } catch (error) {
    throw new UsageError(`config: ${(error as Error).message}`);
  }
  try {
    return await connectBus(config, { name });
  } catch (error) {
    if (error instanceof BusError) throw new UsageError(error.message);
    throw error;
  }
}
