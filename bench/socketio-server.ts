/**
 * The peer of docs/benchmarks.md: the Socket.IO app users would write instead. One Socket.IO 4 server with the
 * Redis adapter (@socket.io/redis-adapter), one room per stream (the client names it in its handshake `auth`),
 * WebSocket transport only, behind nginx at `/ws/socket.io/`. Workers fan out to it with the adapter's emitter
 * (@socket.io/redis-emitter, see bench/publisher.ts): the documented way to emit from a process that is not a
 * Socket.IO server.
 *   PORT=<port> REDIS_URL=redis://127.0.0.1:<port> REDIS_PASSWORD=<password> node --import tsx bench/socketio-server.ts
 */
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";

const port = Number(process.env.PORT);
const pubClient = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", {
  password: process.env.REDIS_PASSWORD || undefined,
});
const subClient = pubClient.duplicate();

const http = createServer((_req, res) => res.end("ok"));
const io = new Server(http, {
  path: "/ws/socket.io/",
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});
io.adapter(createAdapter(pubClient, subClient));

io.on("connection", (socket) => {
  const room = typeof socket.handshake.auth.stream === "string" ? socket.handshake.auth.stream : "none";
  void socket.join(room);
  socket.emit("welcome");
});

/** Serve only once the adapter's pattern subscription is in place (nothing emitted after that can be missed). */
async function main(): Promise<void> {
  for (;;) {
    const patterns = Number(await pubClient.call("PUBSUB", "NUMPAT").catch(() => 0));
    if (patterns >= 1) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  http.listen(port, "127.0.0.1", () => console.log(`socket.io server on ${port}`));
}
void main();
