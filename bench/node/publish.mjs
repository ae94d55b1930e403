// Backend publish throughput: M publishes over HTTP with C in flight, to each target in turn,
// optionally with S subscribers on the channel. Usage:
//   node publish.mjs --targets JSON [--messages 20000] [--concurrency 32] [--subscribers 0]
// Prints one JSON line per target.
import { parseArgs } from "node:util";
import { watchLoad } from "./lib/monitor.mjs";
import { emit, parseTargets, quantile, round } from "./lib/report.mjs";
import { pool, publisher, subscriber } from "./lib/targets.mjs";

const { values } = parseArgs({
  options: {
    targets: { type: "string" },
    messages: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "32" },
    subscribers: { type: "string", default: "0" },
    payload: { type: "string", default: "64" },
  },
});
const messages = Number(values.messages);
const concurrency = Number(values.concurrency);
const pad = "x".repeat(Number(values.payload));

for (const target of parseTargets(values.targets ?? "")) {
  const channel = `bench:publish:${Date.now()}`;
  let delivered = 0;
  const sockets = await pool(Number(values.subscribers), 20,
    () => subscriber(target, channel, () => { delivered += 1; }));
  const publish = publisher(target, channel);
  const answers = new Float64Array(messages);
  const stop = watchLoad();
  const started = performance.now();
  await pool(messages, concurrency, async (n) => {
    const sent = performance.now();
    await publish({ n, pad });
    answers[n] = performance.now() - sent;
  });
  const elapsedS = (performance.now() - started) / 1000;
  const load = stop();
  for (const socket of sockets) socket.close();
  answers.sort();
  emit({
    target: target.name, kind: target.kind, messages, concurrency,
    subscribers: sockets.length, delivered_so_far: delivered,
    publishes_per_s: round(messages / elapsedS, 0), elapsed_s: round(elapsedS, 3),
    answer_p50_ms: round(quantile(answers, 0.5), 2), answer_p99_ms: round(quantile(answers, 0.99), 2),
    load,
  });
}
process.exit(0);
