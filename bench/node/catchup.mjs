// Catch-up load: a subscriber that missed N messages gets them all. On the reference it
// subscribes from the backlog's first offset (the backlog is filled once, each run is a new
// session); on the stock peer (started with --recovery) it is socket.io's connection state
// recovery: the socket's transport drops, N messages are broadcast to its room over HTTP
// while it is away, it reconnects and receives the missed packets. Each run is timed from
// the (re)connect to the last message. Usage:
//   node catchup.mjs --targets JSON [--messages 20000] [--runs 5] [--concurrency 32]
// Prints one JSON line per target with every run's messages/s.
import { parseArgs } from "node:util";
import { watchLoad } from "./lib/monitor.mjs";
import { emit, parseTargets, round } from "./lib/report.mjs";
import { connect, pool, publisher, subscriber } from "./lib/targets.mjs";

const { values } = parseArgs({
  options: {
    targets: { type: "string" },
    messages: { type: "string", default: "20000" },
    runs: { type: "string", default: "5" },
    concurrency: { type: "string", default: "32" },
    payload: { type: "string", default: "64" },
    timeout: { type: "string", default: "300" },
  },
});
const messages = Number(values.messages);
const concurrency = Number(values.concurrency);
const pad = "x".repeat(Number(values.payload));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolve once `count()` reaches `target`, or reject after the timeout. */
async function until(count, target) {
  const deadline = performance.now() + Number(values.timeout) * 1000;
  while (count() < target) {
    if (performance.now() > deadline) throw new Error(`caught up ${count()} of ${target}`);
    await sleep(2);
  }
}

/** Publish the backlog; resolve with the answers' lowest offset and the epoch. */
async function fill(target, channel) {
  const publish = publisher(target, channel);
  const started = performance.now();
  const answers = await pool(messages, concurrency, (n) => publish({ n, pad }));
  const fillS = (performance.now() - started) / 1000;
  const first = Math.min(...answers.map((answer) => answer.offset ?? Infinity));
  return { first, epoch: answers[0].epoch, fill_per_s: round(messages / fillS, 0) };
}

/** One reference run over a backlog filled beforehand: seconds to receive all of it. */
async function referenceRun(target, channel, backlog) {
  let received = 0;
  const started = performance.now();
  const socket = await subscriber(target, channel, () => { received += 1; },
    { from: backlog.first, epoch: backlog.epoch });
  await until(() => received, messages);
  const seconds = (performance.now() - started) / 1000;
  socket.close();
  return { seconds, recovered: true, fill_per_s: backlog.fill_per_s };
}

/** One stock CSR run: drop the transport, broadcast the backlog, reconnect, time the replay. */
async function stockRun(target, run) {
  const room = `bench:catchup:${run}:${Date.now()}`;
  let received = 0;
  const socket = await connect(target.url, { query: { room } });
  // CSR only resumes a socket that has seen an offset, i.e. one broadcast before the drop.
  const warmed = new Promise((resolve) => socket.once("message", resolve));
  await publisher(target, room)({ n: -1 });
  await warmed;
  socket.on("message", () => { received += 1; });
  const gone = new Promise((resolve) => socket.once("disconnect", resolve));
  socket.io.engine.close(); // the server sees "transport close", a reason CSR recovers from
  await gone;
  await sleep(200); // the server's side of the close must land before the broadcasts
  const { fill_per_s } = await fill(target, room);
  const started = performance.now();
  socket.connect();
  await until(() => received, messages);
  const seconds = (performance.now() - started) / 1000;
  const recovered = socket.recovered;
  socket.close();
  return { seconds, recovered, fill_per_s };
}

for (const target of parseTargets(values.targets ?? "")) {
  const channel = `bench:catchup:${Date.now()}`;
  const backlog = target.kind === "reference" ? await fill(target, channel) : null;
  const runs = [];
  const stop = watchLoad();
  for (let run = 0; run < Number(values.runs); run += 1) {
    runs.push(backlog ? await referenceRun(target, channel, backlog) : await stockRun(target, run));
  }
  const rates = runs.map((r) => round(messages / r.seconds, 0));
  const sorted = [...rates].sort((a, b) => a - b);
  emit({
    target: target.name, kind: target.kind, messages, runs: rates,
    median_per_s: sorted[Math.floor(sorted.length / 2)],
    recovered: runs.every((r) => r.recovered),
    fill_per_s: runs[0].fill_per_s,
    load: stop(),
  });
}
process.exit(0);
