// Live fan-out load: K subscribers on one channel (room), one publisher posting over HTTP at a
// fixed rate, each message stamped with its send time; latency is measured in this process's
// clock. The same process drives every target at every rate, one after the other. Usage:
//   node fanout.mjs --targets JSON [--subscribers 100] [--rates 100,300] [--duration 10]
// Prints one JSON line per (rate, target).
import { parseArgs } from "node:util";
import { watchLoad } from "./lib/monitor.mjs";
import { emit, parseTargets, quantile, round } from "./lib/report.mjs";
import { pool, publisher, subscriber } from "./lib/targets.mjs";

const { values } = parseArgs({
  options: {
    targets: { type: "string" },
    subscribers: { type: "string", default: "100" },
    rates: { type: "string", default: "100,300" },
    duration: { type: "string", default: "10" },
    drain: { type: "string", default: "30" },
    warmup: { type: "string", default: "1" },
  },
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One run: connect, publish `rate`/s for `duration` s, wait for the deliveries, disconnect.
 * @param {import("./lib/targets.mjs").Target} target
 * @param {number} subscribers
 * @param {number} rate
 * @param {number} duration
 * @param {number} drainS
 * @param {number} warmupS
 */
async function run(target, subscribers, rate, duration, drainS, warmupS) {
  const channel = `bench:fanout:${rate}:${Date.now()}`;
  const messages = Math.max(1, Math.round(rate * duration));
  const latencies = new Float64Array(subscribers * messages);
  let delivered = 0;
  let lastDelivery = 0;
  const onData = (data) => {
    if (data.warmup) return;
    const now = performance.now();
    if (delivered < latencies.length) latencies[delivered] = now - data.sent;
    delivered += 1;
    lastDelivery = now;
  };
  const sockets = await pool(subscribers, 20, () => subscriber(target, channel, onData));
  const publish = publisher(target, channel);
  let failed = 0;
  const inFlight = new Set();
  /** Open loop: each publish goes out on schedule whatever the answers do, like real producers. */
  async function publishAtRate(count, warmup) {
    const from = performance.now();
    for (let n = 0; n < count; n += 1) {
      const wait = from + (n * 1000) / rate - performance.now();
      if (wait > 1) await sleep(wait);
      const request = publish({ n, sent: performance.now(), warmup }).catch(() => { if (!warmup) failed += 1; });
      inFlight.add(request);
      request.finally(() => inFlight.delete(request));
    }
    await Promise.all(inFlight);
  }
  // Warm up first (JIT, buffers, first-use allocations), then let its deliveries land.
  await publishAtRate(Math.round(rate * warmupS), true);
  await sleep(500);
  const stop = watchLoad();
  const started = performance.now();
  await publishAtRate(messages, false);
  const publishedS = (performance.now() - started) / 1000;
  const expected = subscribers * (messages - failed);
  const deadline = performance.now() + drainS * 1000;
  while (delivered < expected && performance.now() < deadline) await sleep(20);
  const load = stop();
  const disconnected = sockets.filter((socket) => !socket.connected).length;
  for (const socket of sockets) socket.close();
  const sorted = latencies.subarray(0, Math.min(delivered, latencies.length)).sort();
  const spanS = ((lastDelivery || performance.now()) - started) / 1000;
  const ms = (q) => (sorted.length ? round(quantile(sorted, q), 2) : null);
  return {
    target: target.name, kind: target.kind, subscribers, rate, messages,
    publish_rate: round(messages / publishedS, 1),
    delivered, expected, missing: expected - delivered, failed_publishes: failed, disconnected,
    deliveries_per_s: round(delivered / spanS, 0),
    p50_ms: ms(0.5), p99_ms: ms(0.99), max_ms: ms(1),
    load,
  };
}

const targets = parseTargets(values.targets ?? "");
for (const rate of values.rates.split(",").map(Number)) {
  for (const target of targets) {
    emit(await run(target, Number(values.subscribers), rate, Number(values.duration), Number(values.drain), Number(values.warmup)));
    await sleep(500); // let the last closes settle before the next server is measured
  }
}
process.exit(0);
