// Checkpointing: the interval timers (and the prediction log's), and on close the final
// checkpoint of every stream that moved, after the engine ran what the feeds delivered. A
// checkpoint that cannot be written after its retries fails app.close() with
// ShutdownCheckpointError (the store still closes after it), so serve exits 1.
import fp from 'fastify-plugin';
import { ShutdownCheckpointError } from '../runtime.js';
import { checkpointsPortOf, type CheckpointsPort } from '../views.js';
import { isLent, type ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    checkpoints: CheckpointsPort;
  }
}

export const checkpointingPlugin = fp<ServiceSource>(
  async (app, source) => {
    const runtime = app.serviceRuntime;
    app.decorate('checkpoints', checkpointsPortOf(runtime));
    if (isLent(source)) return;
    app.addHook('onReady', async () => runtime.startCheckpointTimers());
    app.addHook('onClose', async () => {
      await runtime.drain();
      const lost = await runtime.writeShutdownCheckpoints();
      if (lost.length > 0) throw new ShutdownCheckpointError(lost);
    });
  },
  { name: 'checkpointing', dependencies: ['store', 'engine'] },
);
