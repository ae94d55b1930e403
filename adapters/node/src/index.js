/**
 * replay/1 for an existing socket.io Server: one call attaches the `replay:*` events to the
 * namespace `/` and returns the backend HTTP API as a request handler.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_LIMITS, transportBound } from './core/requests.js';
import { ReplayService } from './service.js';
import { createHttpHandler } from './io/http.js';
import { Notifier } from './io/notifier.js';
import { inspectPackets } from './io/packets.js';
import { loadValidator } from './io/schemas.js';
import { SessionRegistry } from './io/sessions.js';
import { attachSocketHandlers } from './io/socket.js';
import { MemoryStore } from './stores/memory.js';

export { ReplayError } from './core/errors.js';
export { MemoryStore } from './stores/memory.js';

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const OPTIONAL_FEATURES = ['client-publish', 'idempotency', 'history', 'cursors', 'retention'];

/**
 * @typedef {object} ReplayOptions
 * @property {string} apiKey the backend API key (API-2)
 * @property {'memory'|string|import('./stores/types.js').Store} [store] `memory` (default), a
 *   `redis://` URL, or a store object
 * @property {Partial<typeof DEFAULT_LIMITS>} [limits]
 *
 * @typedef {object} Replay
 * @property {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, next?: (err?: unknown) => void) => void} handler
 *   the backend HTTP API; calls `next()` (or answers 404) for paths outside `/replay/v1/`
 * @property {import('./stores/types.js').Store} store
 * @property {() => Promise<void>} close detaches nothing from `io`, but stops timers and closes the store
 */

/**
 * @param {import('socket.io').Server} io a Server already attached to its HTTP server
 * @param {ReplayOptions} options
 * @returns {Promise<Replay>}
 */
export async function attachReplay(io, options) {
  if (!options?.apiKey) throw new TypeError('attachReplay: options.apiKey is required');
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const engine = /** @type {any} */ (io).engine;
  if (!engine) throw new TypeError('attachReplay: attach the socket.io Server to its HTTP server first');
  const bound = transportBound(limits);
  if (engine.opts.maxHttpBufferSize < bound) {
    // TRN-7: a smaller engine buffer closes connections the spec says to answer.
    throw new RangeError(`attachReplay: set maxHttpBufferSize to at least ${bound} on the socket.io Server`);
  }
  const store = await openStore(options.store ?? 'memory');
  const features = ['sessions', ...OPTIONAL_FEATURES, ...(store.cluster ? ['cluster'] : [])];
  /** @type {SessionRegistry} */
  let registry;
  const service = new ReplayService({
    store, limits, features,
    onSessionChanged: (id) => registry.refresh(id),
  });
  registry = new SessionRegistry({ service });
  const notifier = new Notifier();
  store.onAppend((channel) => notifier.notify(channel));
  store.onSession((id) => registry.refresh(id).catch(() => {}));
  const validate = loadValidator();
  inspectPackets(engine);
  attachSocketHandlers(io.of('/'), { service, notifier, validate, registry });
  const handler = createHttpHandler(service, { apiKey: options.apiKey, validate, version: VERSION });
  return {
    handler,
    store,
    async close() {
      registry.close();
      await store.close();
    },
  };
}

/** @param {'memory'|string|import('./stores/types.js').Store} spec */
async function openStore(spec) {
  if (typeof spec === 'object') return spec;
  if (spec === 'memory') return new MemoryStore();
  if (/^rediss?:\/\//.test(spec)) {
    const { RedisStore } = await import('./stores/redis.js');
    const store = new RedisStore(spec);
    await store.connect();
    return store;
  }
  throw new TypeError(`attachReplay: unknown store ${JSON.stringify(spec)} (memory or redis://...)`);
}
