// Types of the public API (the JSDoc in index.js says the same).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'socket.io';

export interface ReplayLimits {
  max_payload_bytes: number;
  max_batch: number;
  max_history_limit: number;
  idempotency_window_s: number;
  max_subscriptions: number;
  max_ttl_s: number;
}

export interface ReplayOptions {
  /** The backend API key (`Authorization: Bearer <key>`). */
  apiKey: string;
  /** `'memory'` (default), a `redis://` URL, or a store object. */
  store?: 'memory' | string | object;
  limits?: Partial<ReplayLimits>;
}

export interface Replay {
  /** The backend HTTP API under `/replay/v1/`; calls `next()` (or answers 404) for other paths. */
  handler(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  store: object;
  /** Stops the adapter's timers and closes its store; does not close `io`. */
  close(): Promise<void>;
}

/** Attach replay/1 to the namespace `/` of an already attached socket.io Server. */
export function attachReplay(io: Server, options: ReplayOptions): Promise<Replay>;

export class ReplayError extends Error {
  constructor(code: string, message: string, details?: Record<string, unknown>);
  readonly code: string;
  readonly details?: Record<string, unknown>;
  readonly status: number;
}

export class MemoryStore {
  readonly durable: false;
  readonly cluster: false;
}
