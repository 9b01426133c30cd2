// `lob-rtrl serve --role worker`: the process around a PartitionWorker. It connects to NATS
// (one clear line if it cannot), owns its share of partitions, and answers /healthz and
// /metrics (Prometheus: partitions owned, consumer lag, messages applied, predictions,
// checkpoints, restarts per partition) on the configured port.
import type { Logger } from 'pino';
import type { EngineConfig } from '../engine/config.js';
import type { BusConfig } from './config.js';
import { connectBus } from './market-log.js';
import { PartitionWorker, type PartitionStats } from './partition-worker.js';
import { startRoleServer } from './role-server.js';

export interface WorkerRole {
  readonly address: string;
  readonly worker: PartitionWorker;
  close(): Promise<void>;
}

export async function startWorkerRole(options: { bus: BusConfig; engine: EngineConfig; host: string; port: number; logger: Logger }): Promise<WorkerRole> {
  const { logger } = options;
  const bus = await connectBus(options.bus, { name: 'lob-rtrl worker' });
  const worker = await PartitionWorker.start({ bus, engineConfig: options.engine, logger: logger.child({ component: 'worker' }) });
  logger.info({ worker: worker.workerId, partitions: worker.ownedPartitions }, 'worker started');
  const server = await startRoleServer({
    role: 'worker',
    host: options.host,
    port: options.port,
    health: () => ({ worker: worker.workerId, partitions: worker.ownedPartitions }),
    metrics: () => workerMetrics(worker.workerId, worker.stats()),
  });
  return {
    address: server.address,
    worker,
    async close() {
      await server.close();
      await worker.close();
      await bus.close();
    },
  };
}

function workerMetrics(workerId: string, partitions: readonly PartitionStats[]): string[] {
  const lines = [
    '# HELP lob_rtrl_bus_partitions_owned Partitions of the market-data log this worker owns.',
    '# TYPE lob_rtrl_bus_partitions_owned gauge',
    `lob_rtrl_bus_partitions_owned{worker="${workerId}"} ${partitions.length}`,
  ];
  const series: [string, string, string, (stats: PartitionStats) => number][] = [
    ['lob_rtrl_bus_consumer_lag', 'gauge', 'Log messages of the partition not yet consumed.', (stats) => stats.lag],
    ['lob_rtrl_bus_last_sequence', 'gauge', 'Log sequence of the last message applied.', (stats) => stats.lastSequence],
    ['lob_rtrl_bus_applied_total', 'counter', 'Log messages applied since the partition was taken.', (stats) => stats.applied],
    ['lob_rtrl_bus_rejected_total', 'counter', 'Log messages rejected as invalid.', (stats) => stats.rejected],
    ['lob_rtrl_bus_predictions_total', 'counter', 'Predictions published (duplicates included).', (stats) => stats.predictions],
    ['lob_rtrl_bus_checkpoints_total', 'counter', 'Checkpoints written to the shared store.', (stats) => stats.checkpoints],
    ['lob_rtrl_bus_partition_restarts_total', 'counter', 'Restarts of the partition from its checkpoint after a failure.', (stats) => stats.restarts],
  ];
  for (const [name, type, help, value] of series) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const stats of partitions) lines.push(`${name}{partition="${stats.partition}"} ${value(stats)}`);
  }
  return lines;
}
