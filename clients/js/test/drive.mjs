// Drives the library from Node.js for tests/test_js_client.py: an application that reads one
// channel through the library and writes, as JSON lines on stdout, everything it was told.
//
// usage: node drive.mjs CONFIG_JSON
//   CONFIG: {url, backend, apiKey, sessionId, channel, policy?, ack?, from?, socket?,
//            minDelay?, maxDelay?, stableMs?, requestTimeoutMs?, handlerDelayMs?}
// getToken registers (or re-registers, SES-4) the session through the backend API, as an
// application's backend would, so every reconnect gets a fresh token.
// stdin commands, one JSON per line: {"cmd": "history"} prints every page; {"cmd": "close"}
// prints the final stats and the position store, then exits.
import { createInterface } from "node:readline";
import { connect, MemoryPositions } from "../src/index.js";

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let tokens = 0;
async function getToken() {
  const response = await fetch(`${config.backend}/replay/v1/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${config.apiKey}` },
    body: JSON.stringify({
      session_id: config.sessionId,
      client_id: "js-driver",
      grants: [{ channels: "*", actions: ["subscribe", "history"] }],
    }),
  });
  if (!response.ok) throw new Error(`register: HTTP ${response.status}`);
  tokens += 1;
  return (await response.json()).token;
}

const positions = new MemoryPositions();
const client = connect(config.url, getToken, {
  positions,
  minDelay: config.minDelay ?? 20,
  maxDelay: config.maxDelay ?? 300,
  stableMs: config.stableMs ?? 1000,
  requestTimeoutMs: config.requestTimeoutMs ?? 3000,
  socket: config.socket ?? { transports: ["websocket"] },
});
client.on("connect", (e) => out({ event: "connect", ...e }));
client.on("disconnect", (e) => out({ event: "disconnect", ...e }));
client.on("error", (e) => out({ event: "client_error", ...e }));

const subscription = client.subscribe(config.channel, {
  from: config.from,
  onUnresumable: config.policy,
  ack: config.ack,
  onMessages: async (messages, { epoch }) => {
    // The application is slow now and then, so batches queue behind its handler.
    if (config.handlerDelayMs && Math.random() < 0.2) await sleep(Math.random() * config.handlerDelayMs);
    out({ event: "messages", epoch, offsets: messages.map((m) => m.offset), data: messages.map((m) => m.data) });
  },
});
for (const name of ["subscribed", "unsubscribed", "error"]) {
  subscription.on(name, (data) => out({ event: name, ...data }));
}

for await (const line of createInterface({ input: process.stdin })) {
  const { cmd } = JSON.parse(line);
  if (cmd === "history") {
    try {
      for await (const page of client.history(config.channel, { limit: config.historyLimit ?? 7 })) {
        out({ event: "page", epoch: page.epoch, first: page.first, head: page.head, offsets: page.messages.map((m) => m.offset) });
      }
      out({ event: "history_done" });
    } catch (error) {
      out({ event: "history_error", code: error.code });
    }
  } else if (cmd === "close") {
    await subscription._queue; // let the handler finish what it holds
    out({
      event: "done",
      state: subscription.state,
      stats: { ...subscription.stats, ...client.stats, tokens },
      position: await positions.get(config.channel),
      acked: subscription._acks?.acked ?? null,
    });
    client.close();
    break;
  }
}
process.exit(0);
