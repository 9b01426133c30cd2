// Counters of the service's network edge: the WebSocket stream's subscribers and the push
// producers' connections. Kept by the runtime, so every reader (/metrics, /v1/status, tests
// holding a runtime) finds the same ones, whichever plugins registered first.
export class StreamStats {
  /** Open /v1/stream connections. */
  subscribers = 0;
  /** Predictions waiting in stream subscribers' queues right now. */
  queued = 0;
  /** Predictions never sent because a newer one of the same symbol replaced them. */
  conflated = 0;
  /** Predictions discarded unsent: queue overflow beyond one per symbol, or left queued when a slow subscriber was closed. */
  dropped = 0;
  /** Stream subscribers closed with 1013 because their send buffer did not drain. */
  slowClosed = 0;
  /** Of those, the ones that had not read up to the close frame within the grace and were cut off. */
  slowTerminated = 0;
  /** Open /v1/ingest connections. */
  ingestConnections = 0;
  /** Ingest frames refused by the per-connection rate limit. */
  rateLimited = 0;
  /** Upgrades refused because `maxIngestConnections` / `maxStreamConnections` were open. */
  connectionsRefused = 0;
  /** Stream clients terminated because they did not answer a ping. */
  halfOpenClosed = 0;
  /** Exceptions caught in a socket handler (a bug, never bad input): counted, logged, survived. */
  handlerErrors = 0;
}
