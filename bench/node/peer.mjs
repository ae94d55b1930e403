// The stock peer: a plain socket.io server that broadcasts each HTTP publish to a room, the
// way an application without replay does it today. Usage:
//   node peer.mjs [--port 0] [--recovery]
// Sockets join the room named in their handshake query (`?room=`). POST /publish/{room}
// with a JSON body `{"data": ...}` answers 201 after `io.to(room).emit("message", data)`.
// --recovery turns on socket.io's connection state recovery (CSR). The first line printed
// ends with the URL, like the reference's.
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, recovery: { type: "boolean", default: false } },
});

/** Milliseconds CSR keeps a disconnected socket's session and missed packets (its default). */
const MAX_DISCONNECTION_MS = 2 * 60 * 1000;

const server = http.createServer((req, res) => {
  const match = /^\/publish\/([^/]+)$/.exec(req.url ?? "");
  if (req.method !== "POST" || !match) {
    res.writeHead(404).end();
    return;
  }
  const room = decodeURIComponent(match[1]);
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400, { "content-type": "application/json" }).end('{"error":"bad_request"}');
      return;
    }
    io.to(room).emit("message", body.data);
    res.writeHead(201, { "content-type": "application/json" }).end('{"ok":true}');
  });
});

const io = new Server(server, {
  // Only the HTTP publish route above answers plain requests; socket.io takes its own path.
  connectionStateRecovery: values.recovery
    ? { maxDisconnectionDuration: MAX_DISCONNECTION_MS, skipMiddlewares: true }
    : undefined,
});
io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  // A recovered socket gets its rooms back from CSR; joining again is harmless.
  if (typeof room === "string") socket.join(room);
});

server.listen(Number(values.port), "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : values.port;
  console.log(`socket.io peer listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => io.close(() => process.exit(0)));
