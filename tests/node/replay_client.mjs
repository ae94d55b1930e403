// A replay/1 client written the way most users write one: socket.io-client from npm.
// Usage: node replay_client.mjs URL TOKEN CHANNEL EXPECTED_HEAD
// Subscribes from the beginning (a first read knows no epoch, so it names no offset: spec
// EPO-6), prints one JSON line per replay:messages event and a final
// {"done": ...} line once EXPECTED_HEAD arrived; exits 1 on any error or after 30 s.
import { io } from "socket.io-client";

const [url, token, channel, expectedHead] = process.argv.slice(2);
const head = Number(expectedHead);
const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
const fail = (why) => {
  console.log(JSON.stringify({ error: why }));
  process.exit(1);
};
setTimeout(() => fail("timeout"), 30_000).unref();

let reply = null;
const offsets = [];
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
socket.on("replay:messages", (event) => {
  if (reply === null) fail("replay:messages arrived before the subscribe reply");
  for (const message of event.messages) offsets.push(message.offset);
  console.log(JSON.stringify({ batch: event.messages.length, epoch: event.epoch }));
  if (offsets.at(-1) === head) {
    console.log(JSON.stringify({ done: true, reply, offsets }));
    socket.disconnect();
    process.exit(0);
  }
});
socket.on("connect", () => {
  socket.emit("replay:subscribe", { channel, from: "beginning" }, (answer) => {
    if (!answer.ok) fail(`subscribe failed: ${JSON.stringify(answer)}`);
    reply = answer;
  });
});
