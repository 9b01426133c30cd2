// Where an app's service comes from. Built from its configuration, the service belongs to the
// app: each infrastructure plugin starts its part when the app is ready and stops it when the
// app closes, in the order the dependency graph gives. Lent as a running ServiceRuntime (tests,
// tools), it belongs to the caller, who starts and stops it; the plugins only decorate.
import type { FeedConfig, ServiceConfig } from '../config.js';
import type { RuntimeLogger, ServiceRuntime } from '../runtime.js';

export interface OwnedService {
  readonly config: ServiceConfig;
  /** The runtime's logger (serve gives a child of its own). */
  readonly logger: RuntimeLogger;
  /** Wall clock for live data and checkpoint times; Date.now unless a test fixes it. */
  readonly now?: () => number;
  /**
   * Starts the demo feed connected when no feed is configured and `demoFeed` is on (serve gives
   * the bundled recording on a loopback stand-in); without it such a service has no feed.
   */
  readonly demoFeed?: () => Promise<DemoFeed>;
}

/** A feed the entry point runs for the service, and stops after it. */
export interface DemoFeed {
  readonly feed: FeedConfig;
  close(): Promise<void>;
}

export interface LentService {
  readonly runtime: ServiceRuntime;
}

export type ServiceSource = OwnedService | LentService;

export function isLent(source: ServiceSource): source is LentService {
  return 'runtime' in source;
}
