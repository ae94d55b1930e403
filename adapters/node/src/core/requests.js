/**
 * What a request alone shows (step 1 of every order in §6.6 and step 5 of API-9): argument
 * shape, schema, I-JSON, then the size of `data`. Pure: the schema validator is passed in.
 */
import { BadRequest, PayloadTooLarge } from './errors.js';
import { payloadBytes } from './size.js';

/** @typedef {(name: string, value: unknown) => boolean} Validate */

/** Default limits, advertised in `info` and enforced (INF-3). */
export const DEFAULT_LIMITS = Object.freeze({
  max_payload_bytes: 65536,
  max_batch: 500,
  max_history_limit: 1000,
  idempotency_window_s: 3600,
  max_subscriptions: 100,
  max_ttl_s: 2592000,
});

/** TRN-7 and API-8: the packet and body bound, one number for both. */
export const transportBound = (limits) => 6 * limits.max_payload_bytes + 16384;

/** @param {unknown} v */
export const isPlainObject = (v) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !ArrayBuffer.isView(v);

/**
 * TRN-3: exactly one argument, a JSON object without binary attachments.
 * @param {unknown[]} args the event's arguments, acknowledgement callback removed
 * @returns {Record<string, unknown>}
 */
export function singleObjectArgument(args) {
  if (args.length !== 1) throw new BadRequest(`expected exactly one object argument, got ${args.length}`);
  const [arg] = args;
  if (!isPlainObject(arg)) throw new BadRequest('the argument must be a JSON object');
  if (hasBinary(arg)) throw new BadRequest('binary attachments are not allowed');
  return /** @type {Record<string, unknown>} */ (arg);
}

/**
 * Iterative, since a hostile argument may be nested far deeper than the stack (ROB-7).
 * @param {unknown} root @returns {boolean}
 */
function hasBinary(root) {
  const stack = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Buffer.isBuffer(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return true;
    if (typeof v === 'object' && v !== null) stack.push(...Object.values(v));
  }
  return false;
}

/**
 * EVT-3, API-1: the payload matches its schema.
 * @param {Validate} validate
 * @param {string} schema
 * @param {unknown} payload
 */
export function checkSchema(validate, schema, payload) {
  if (!validate(schema, payload)) throw new BadRequest(`the payload does not match ${schema}.json`);
}

/**
 * MSG-8: a number in `data` that no decoder keeps exactly, then LIM-4: the size of `data`.
 * @param {{data: unknown}} payload
 * @param {Array<Array<string|number>>} badNumbers paths of MSG-8 numbers, relative to `payload`
 * @param {number} maxPayloadBytes
 */
export function checkPublishData(payload, badNumbers, maxPayloadBytes) {
  if (badNumbers.some((path) => path[0] === 'data')) {
    throw new BadRequest('data holds a number outside the I-JSON range (MSG-8)');
  }
  const size = payloadBytes(payload.data);
  if (size > maxPayloadBytes) {
    throw new PayloadTooLarge(`data is ${size} bytes, above max_payload_bytes ${maxPayloadBytes}`, {
      max_payload_bytes: maxPayloadBytes,
    });
  }
}

/**
 * SES-6 and SES-7, the registration rules a schema cannot say.
 * @param {{ttl_s?: number, subscribe?: Array<{channel: string}>}} body
 * @param {{max_ttl_s?: number}} limits
 * @returns {number} the session's ttl in seconds (SES-5)
 */
export function registrationTtl(body, limits) {
  const max = limits.max_ttl_s ?? 2592000;
  if (body.ttl_s !== undefined && body.ttl_s > max) throw new BadRequest(`ttl_s is above ${max}`);
  const channels = (body.subscribe ?? []).map((s) => s.channel);
  if (new Set(channels).size !== channels.length) throw new BadRequest('subscribe names one channel twice');
  return body.ttl_s ?? Math.min(3600, max);
}

const DECIMAL = /^[0-9]{1,16}$/;

/**
 * HIS-2: the query of `GET …/messages` as a history request (`from`, `epoch`, `limit`).
 * @param {URLSearchParams} query
 * @returns {{from?: number|'beginning', epoch?: string, limit?: number}}
 */
export function historyQuery(query) {
  /** @type {Record<string, string>} */
  const one = {};
  for (const name of ['from', 'epoch', 'limit']) {
    const all = query.getAll(name);
    if (all.length > 1) throw new BadRequest(`${name} is given twice`);
    if (all.length === 1) one[name] = all[0];
  }
  /** @type {{from?: number|'beginning', epoch?: string, limit?: number}} */
  const request = {};
  if (one.from !== undefined) {
    if (one.from === 'beginning') request.from = 'beginning';
    else request.from = positive(one.from, 'from');
  }
  if (one.epoch !== undefined) {
    if (one.epoch.length < 1 || one.epoch.length > 64) throw new BadRequest('epoch must be 1 to 64 characters');
    request.epoch = one.epoch;
  }
  if (one.limit !== undefined) request.limit = positive(one.limit, 'limit');
  if (typeof request.from === 'number' && request.epoch === undefined) {
    throw new BadRequest('an integer from needs its epoch (EPO-6)');
  }
  return request;
}

/** @param {string} text @param {string} name */
function positive(text, name) {
  const n = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= Number.MAX_SAFE_INTEGER)) throw new BadRequest(`${name} must be a decimal integer >= 1`);
  return n;
}
