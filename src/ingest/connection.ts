// One websocket connection to a venue and the timers that belong to it: the subscription sent on
// open, a websocket ping (plus the venue's own ping frame) every pingIntervalMs, a silence timeout
// that drops a connection no frame arrived on, and the moment the connection has lasted long
// enough to count as healthy. Everything it starts, it stops when the socket closes. Between
// connections, `ReconnectDelay` waits out the backoff and can be cut short by a close.
import WebSocket from 'ws';
import type { RawData } from 'ws';

export interface ConnectionSettings {
  readonly url: string;
  /** Frames sent as soon as the socket opens (the subscription). */
  readonly subscribeFrames: readonly string[];
  /** The venue's application-level ping frame, sent beside each websocket ping; null where none. */
  readonly appPing: string | null;
  /** 0 = never ping. */
  readonly pingIntervalMs: number;
  readonly silenceTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** After this long open, `onHealthy` is called once. */
  readonly healthyAfterMs: number;
}

export interface ConnectionEvents {
  /** The handshake completed and the subscription went out. */
  onOpen(): void;
  onFrame(text: string): void;
  /** A socket error, already phrased with the URL (the caller redacts it). */
  onError(message: string): void;
  /** The connection has been open `healthyAfterMs`. */
  onHealthy(): void;
  /** The client ends the connection (silence, or `drop`); `reason` is what the outcome will say. */
  onDrop(reason: string): void;
  /** The socket closed (its timers are stopped); called before `outcome` settles. */
  onClose(): void;
}

export interface ConnectionOutcome {
  /** The handshake completed (a connection that never opened produces no disconnect marker). */
  readonly opened: boolean;
  readonly reason: string;
}

/** A peer that never answers the close frame must not hold close() hostage. */
const CLOSE_GRACE_MS = 1_000;

export class VenueConnection {
  /** Settles when the socket has closed and every timer of this connection is stopped. */
  readonly outcome: Promise<ConnectionOutcome>;
  private readonly socket: WebSocket;
  private opened = false;
  private ended = false;
  private dropReason: string | undefined;
  private errorMessage: string | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly events: ConnectionEvents,
  ) {
    this.socket = new WebSocket(settings.url, { perMessageDeflate: false, handshakeTimeout: settings.handshakeTimeoutMs });
    this.outcome = new Promise<ConnectionOutcome>((resolve) => {
      this.socket.on('open', () => this.onOpen());
      this.socket.on('message', (data) => {
        if (!this.ended) this.onMessage(data);
      });
      this.socket.on('error', (error) => {
        this.errorMessage = error.message;
        this.events.onError(`websocket ${settings.url}: ${error.message}`);
      });
      this.socket.on('close', (code, reasonBuffer) => {
        this.stopTimers();
        this.events.onClose();
        const closeReason = reasonBuffer.length > 0 ? `: ${reasonBuffer.toString('utf8')}` : '';
        const reason = this.dropReason ?? (this.errorMessage !== undefined ? `websocket error: ${this.errorMessage}` : `connection closed by peer (code ${code}${closeReason})`);
        resolve({ opened: this.opened, reason });
      });
    });
  }

  /** The socket is open: frames can be sent. */
  get isOpen(): boolean {
    return !this.ended && this.socket.readyState === WebSocket.OPEN;
  }

  /** Sends `frame` if the socket is open; returns whether it did. */
  send(frame: string): boolean {
    if (!this.isOpen) return false;
    this.socket.send(frame);
    return true;
  }

  /** Ends the connection at once (the first reason given is the one reported). */
  drop(reason: string): void {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.dropReason ??= reason;
    this.events.onDrop(reason);
    this.socket.terminate();
  }

  /** Closes the connection politely (close frame), terminating it if the peer does not answer. */
  close(reason: string): void {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.dropReason ??= reason;
    if (this.socket.readyState !== WebSocket.OPEN) {
      this.socket.terminate();
      return;
    }
    this.socket.close(1000, 'client closing');
    this.graceTimer ??= setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS);
  }

  private onOpen(): void {
    this.opened = true;
    const { settings } = this;
    for (const frame of settings.subscribeFrames) this.socket.send(frame);
    this.silenceTimer = setTimeout(() => this.drop(`silence: no frame for ${settings.silenceTimeoutMs} ms`), settings.silenceTimeoutMs);
    if (settings.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => {
        if (this.socket.readyState !== WebSocket.OPEN) return;
        this.socket.ping();
        if (settings.appPing !== null) this.socket.send(settings.appPing);
      }, settings.pingIntervalMs);
    }
    this.healthTimer = setTimeout(() => {
      if (!this.ended) this.events.onHealthy();
    }, settings.healthyAfterMs);
    this.events.onOpen();
  }

  private onMessage(data: RawData): void {
    this.silenceTimer?.refresh();
    this.events.onFrame(rawDataToText(data));
  }

  private stopTimers(): void {
    this.ended = true;
    clearTimeout(this.silenceTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.healthTimer);
    clearTimeout(this.graceTimer);
    this.silenceTimer = undefined;
    this.pingTimer = undefined;
    this.healthTimer = undefined;
    this.graceTimer = undefined;
  }
}

/** The reconnect backoff's wait: one timer at a time, which `interrupt` (a close) cuts short. */
export class ReconnectDelay {
  private wake: (() => void) | undefined;

  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wake = undefined;
    });
  }

  interrupt(): void {
    this.wake?.();
  }
}

function rawDataToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
