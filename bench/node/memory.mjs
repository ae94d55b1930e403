// Memory load: N connected, subscribed sockets held open on each target in turn, while the
// orchestrator reads the server's RSS. Usage:
//   node memory.mjs --targets JSON [--sockets 2000] [--phases]
// For each target it prints {"event": "ready", ...} once every socket is subscribed, then waits
// for a line on stdin before closing them and going on to the next target. With --phases, a
// reference target's sockets first only connect (a session each): it prints
// {"event": "connected", ...} and waits for a line before subscribing them all.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { watchLoad } from "./lib/monitor.mjs";
import { emit, parseTargets } from "./lib/report.mjs";
import { connect, pool, register, subscribe, subscriber } from "./lib/targets.mjs";

const { values } = parseArgs({
  options: {
    targets: { type: "string" },
    sockets: { type: "string", default: "2000" },
    phases: { type: "boolean", default: false },
  },
});
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const sockets = Number(values.sockets);

/**
 * Open the sockets: subscribed at once, or (--phases, reference) connected, reported, then
 * subscribed.
 * @param {import("./lib/targets.mjs").Target} target
 * @param {string} channel
 */
async function openAll(target, channel) {
  if (!values.phases || target.kind !== "reference") {
    return pool(sockets, 50, () => subscriber(target, channel, () => {}));
  }
  const open = await pool(sockets, 50, async () =>
    connect(target.url, { auth: { token: await register(target) } }));
  emit({ event: "connected", target: target.name, kind: target.kind, sockets: open.length });
  await lines.next();
  await pool(sockets, 50, (i) => subscribe(open[i], channel, () => {}));
  return open;
}

for (const target of parseTargets(values.targets ?? "")) {
  const channel = `bench:memory:${Date.now()}`;
  const stop = watchLoad();
  const started = performance.now();
  const open = await openAll(target, channel);
  const connectS = (performance.now() - started) / 1000;
  emit({ event: "ready", target: target.name, kind: target.kind, sockets: open.length, connect_s: connectS, load: stop() });
  await lines.next();
  for (const socket of open) socket.close();
}
process.exit(0);
