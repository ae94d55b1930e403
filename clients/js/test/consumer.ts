// Type-checked (not run) by tests/test_js_client.py: an application written in TypeScript
// against the published declarations (types/), imported by the package's own name.
import { connect, LocalStoragePositions, MemoryPositions } from "socketio-replay-client";
import type { Message, Position, PositionStore, SubscribedEvent } from "socketio-replay-client";

const store: PositionStore = new MemoryPositions();
const client = connect("https://replay.example", async () => "token", { positions: store, maxDelay: 5000 });
const subscription = client.subscribe("orders:17", {
  onUnresumable: (error) => (error.code === "history_truncated" ? "continue" : "fail"),
  ack: { maxDelayMs: 100 },
  onMessages: async (messages: Message[], { epoch }) => {
    const last: Position = { epoch, offset: messages[messages.length - 1].offset };
    return last;
  },
});
subscription.on("subscribed", (event: SubscribedEvent) => event.recovered && event.head);
subscription.on("error", ({ code, retryable }) => `${code}${retryable}`);
const state: "subscribing" | "subscribed" | "unsubscribed" = subscription.state;

async function pages(): Promise<number> {
  let n = 0;
  for await (const page of client.history("orders:17", { from: { epoch: "e", offset: 3 }, limit: 50 })) {
    n += page.messages.length + page.head;
  }
  return n;
}
void pages();
void state;
void new LocalStoragePositions("app:");
// @ts-expect-error: a policy must be one of the three names
client.subscribe("x", { onUnresumable: "skip" });
// @ts-expect-error: a position needs its epoch
client.subscribe("y", { from: { offset: 3 } });
client.close();
