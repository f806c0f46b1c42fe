/**
 * The baseline of docs/benchmarks.md: a bare relay with no logic. One Redis subscriber, a channel per socket, each
 * message written to the channel's sockets as it came. It serves `/ws/bare?channel=<name>` behind nginx and `/live`.
 *   PORT=<port> REDIS_URL=redis://127.0.0.1:<port> REDIS_PASSWORD=<password> node --import tsx bench/bare-relay.ts
 */
import { createServer } from "node:http";
import { Redis } from "ioredis";
import { type WebSocket, WebSocketServer } from "ws";

const port = Number(process.env.PORT);
const subscriber = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", {
  password: process.env.REDIS_PASSWORD || undefined,
});
const sockets = new Map<string, Set<WebSocket>>();

subscriber.on("message", (channel: string, message: string) => {
  const set = sockets.get(channel);
  if (set) for (const ws of set) ws.send(message);
});

const server = createServer((_req, res) => res.end("ok"));
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const channel = new URL(req.url ?? "/", "http://x").searchParams.get("channel") ?? "none";
  let set = sockets.get(channel);
  if (!set) {
    set = new Set();
    sockets.set(channel, set);
    // The welcome waits for Redis's confirmation: nothing published after it can miss the socket.
    void subscriber.subscribe(channel).then(() => ws.send('{"type":"welcome"}'));
  } else {
    ws.send('{"type":"welcome"}');
  }
  set.add(ws);
  ws.on("close", () => {
    set.delete(ws);
    if (set.size === 0) {
      sockets.delete(channel);
      void subscriber.unsubscribe(channel);
    }
  });
});
subscriber.once("ready", () => server.listen(port, "127.0.0.1", () => console.log(`bare relay on ${port}`)));
