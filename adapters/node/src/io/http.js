/**
 * The backend HTTP API (spec §4) as one `(req, res, next?)` handler for a plain `http`
 * server, Express or Fastify. Each request is checked in API-9's order: route, key,
 * `Content-Type`, body limit, body/path/query, then the route's own checks.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { BadRequest, NotFound, PayloadTooLarge, ReplayError, Unauthorized, asReplayError } from '../core/errors.js';
import { scanJson } from '../core/ijson.js';
import { checkPublishData, checkSchema, historyQuery, transportBound } from '../core/requests.js';

const PREFIX = '/replay/v1/';
const CHANNEL_NAME = /^[A-Za-z0-9_.:@/-]{1,200}$/;

/**
 * @typedef {{name: string, feature?: string, auth: boolean, body?: string, run: (ctx: RouteContext) => Promise<{status: number, body?: unknown}>}} Route
 * @typedef {{body: any, badNumbers: Array<Array<string|number>>, params: string[], query: URLSearchParams}} RouteContext
 */

/**
 * @param {import('../service.js').ReplayService} service
 * @param {{apiKey: string, validate: import('./schemas.js').Validate, version: string}} options
 * @returns {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, next?: (err?: unknown) => void) => void}
 */
export function createHttpHandler(service, { apiKey, validate, version }) {
  const bodyLimit = transportBound(service.limits);
  const keyDigest = digest(apiKey);
  const routes = buildRoutes(service, validate, version);

  return function replayHttpHandler(req, res, next) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith(PREFIX)) {
      if (next) return next();
      return send(res, 404, { error: { code: 'not_found', message: 'not a replay/1 route' } });
    }
    handle(req, res, url).catch((err) => sendError(res, asReplayError(err)));
  };

  async function handle(req, res, url) {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const match = matchRoute(routes, method, url.pathname);
    if (!match || (match.route.feature && !service.has(match.route.feature))) {
      if (req.method === 'OPTIONS' && match) return discard(req, () => send(res, 204)); // API-10 exemption
      return discard(req, () => sendError(res, new NotFound(`no route ${req.method} ${url.pathname}`))); // API-6, API-10
    }
    const { route, params } = match;
    if (route.auth && !authorized(req.headers.authorization, keyDigest)) {
      return discard(req, () => sendError(res, new Unauthorized('missing or wrong API key'))); // API-2
    }
    const ctx = { body: undefined, badNumbers: [], params, query: url.searchParams };
    if (route.body) {
      if (!isJsonMediaType(req.headers['content-type'])) {
        return discard(req, () => sendError(res, new BadRequest('Content-Type must be application/json'))); // API-11
      }
      const text = await readBody(req, bodyLimit); // API-7
      const scan = scanJson(text); // API-1, API-13
      checkSchema(validate, route.body, scan.value);
      ctx.body = scan.value;
      ctx.badNumbers = scan.badNumbers;
    } else {
      req.resume();
    }
    const answer = await route.run(ctx);
    send(res, answer.status, answer.body);
  }
}

/** @param {import('../service.js').ReplayService} service @returns {Array<Route & {method: string, path: string[]}>} */
function buildRoutes(service, validate, version) {
  const maxPayload = service.limits.max_payload_bytes;
  return [
    { method: 'GET', path: ['info'], name: 'info', auth: false, run: async () => ({ status: 200, body: service.info(version) }) },
    {
      method: 'POST', path: ['sessions'], name: 'register', auth: true, body: 'http-session-request',
      run: async ({ body }) => service.register(body),
    },
    {
      method: 'DELETE', path: ['sessions', ':id'], name: 'delete', auth: true,
      run: async ({ params }) => {
        await service.deleteSession(decodeSegment(params[0]));
        return { status: 204 };
      },
    },
    {
      method: 'POST', path: ['channels', ':channel', 'messages'], name: 'publish', auth: true, body: 'http-publish-request',
      run: async ({ body, badNumbers, params }) => {
        const channel = channelParam(params[0]);
        checkPublishData(body, badNumbers, maxPayload); // PUB-9: size after the body's checks
        const reply = await service.publish(channel, body);
        return { status: reply.duplicate ? 200 : 201, body: reply }; // PUB-1, IDM-7
      },
    },
    {
      method: 'GET', path: ['channels', ':channel', 'messages'], name: 'history', feature: 'history', auth: true,
      run: async ({ params, query }) => {
        const channel = channelParam(params[0]);
        const request = historyQuery(query); // HIS-2, HIS-9
        return { status: 200, body: await service.history(channel, request) }; // HIS-12
      },
    },
    {
      method: 'PUT', path: ['channels', ':channel', 'retention'], name: 'retention', feature: 'retention', auth: true,
      body: 'http-retention-request',
      run: async ({ body, params }) => ({ status: 200, body: await service.setRetention(channelParam(params[0]), body) }),
    },
  ];
}

/** @returns {{route: any, params: string[]}|null} */
function matchRoute(routes, method, pathname) {
  const segments = pathname.slice(PREFIX.length).split('/');
  let pathOnly = null;
  for (const route of routes) {
    if (route.path.length !== segments.length) continue;
    const params = [];
    if (!route.path.every((p, i) => (p.startsWith(':') ? params.push(segments[i]) > 0 : p === segments[i]))) continue;
    if (route.method === method) return { route, params };
    pathOnly = pathOnly ?? { route: null, params };
  }
  return pathOnly && method === 'OPTIONS' ? { route: { auth: false }, params: [] } : null;
}

/** API-5: one percent-encoded segment, decoded before CHN-1. @param {string} raw */
function channelParam(raw) {
  const channel = decodeSegment(raw);
  if (!CHANNEL_NAME.test(channel)) throw new BadRequest('invalid channel name'); // CHN-1
  return channel;
}

/** @param {string} raw */
function decodeSegment(raw) {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BadRequest('malformed percent-encoding in the path');
  }
}

/** API-3: compare digests of equal length in constant time. @param {string} s */
function digest(s) {
  return createHash('sha256').update(s).digest();
}

/**
 * API-2, API-15: the scheme in any case and one or more spaces, as HTTP reads it; the key exact.
 * @param {string|undefined} header @param {Buffer} keyDigest
 */
function authorized(header, keyDigest) {
  const m = /^bearer +(\S.*)$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1]), keyDigest);
}

/** API-11: `application/json`, any case, parameters ignored. @param {string|undefined} header */
function isJsonMediaType(header) {
  return typeof header === 'string' && header.split(';')[0].trim().toLowerCase() === 'application/json';
}

/**
 * The body as UTF-8 text, or 413 once it passes `limit` (the rest is read and dropped, so the
 * answer is a response, not a closed connection).
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 * @returns {Promise<string>}
 */
async function readBody(req, limit) {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    throw new PayloadTooLarge(`the body is above the body limit of ${limit} bytes`);
  }
  const chunks = [];
  let size = 0;
  let over = false;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) over = true;
    if (!over) chunks.push(chunk);
  }
  if (over) throw new PayloadTooLarge(`the body is above the body limit of ${limit} bytes`);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new BadRequest('the body is not UTF-8');
  }
}

/** Answer without reading a body we refuse; Node drops the rest as it arrives. */
function discard(req, answer) {
  req.resume();
  answer();
}

/** @param {import('node:http').ServerResponse} res @param {ReplayError} err */
function sendError(res, err) {
  send(res, err.status, { error: err.toJSON() });
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} [body] */
function send(res, status, body) {
  if (res.headersSent) return res.end();
  if (body === undefined) {
    res.writeHead(status);
    return res.end();
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
