// Read a channel's history, then follow it live until the head it had at subscribe time.
// usage: REPLAY_URL=http://127.0.0.1:8080 REPLAY_API_KEY=... node examples/catch-up.mjs orders:17
import { connect, MemoryPositions } from "socketio-replay-client";

const [channel = "orders:17"] = process.argv.slice(2);
const url = process.env.REPLAY_URL ?? "http://127.0.0.1:8080";

// Your backend registers the session and hands out its token; here the script plays both.
// getToken runs before every (re)connect: re-registration rotates the token (SES-4).
async function getToken() {
  const response = await fetch(`${url}/replay/v1/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${process.env.REPLAY_API_KEY}` },
    body: JSON.stringify({
      session_id: "example:catch-up",
      client_id: "example",
      grants: [{ channels: channel, actions: ["subscribe", "history"] }],
    }),
  });
  if (!response.ok) throw new Error(`registration failed: HTTP ${response.status}`);
  return (await response.json()).token;
}

const positions = new MemoryPositions(); // LocalStoragePositions("app:") in a browser
const client = connect(url, getToken, { positions });
client.on("error", (e) => console.error("connection:", e.code));

// History: pages of at most 50, following `last offset + 1` until the head.
let retained = 0;
for await (const page of client.history(channel, { limit: 50 })) retained += page.messages.length;
console.log(`history: ${retained} retained messages`);

// Live: starts from the position store's entry (none yet: from the beginning), resumes from
// it by itself after any disconnect, and never hands over an offset twice.
let head = Infinity;
const subscription = client.subscribe(channel, {
  onUnresumable: "continue", // past retention: go on from the first retained offset, and say so
  onMessages: async (messages, { epoch }) => {
    for (const m of messages) console.log(`${epoch}:${m.offset}`, JSON.stringify(m.data));
    if (messages.at(-1).offset >= head) {
      console.log("caught up");
      client.close();
    }
  },
});
subscription.on("subscribed", (e) => {
  head = e.head;
  if (e.truncated) console.log(`skipped to ${e.from}: older messages were removed`);
  if (e.from > head) {
    console.log("caught up");
    client.close();
  }
});
subscription.on("unsubscribed", ({ reason }) => reason !== "closed" && console.log("ended:", reason));
