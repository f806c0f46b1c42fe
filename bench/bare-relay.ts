/**
 * The baseline of docs/benchmarks.md: a bare relay with no logic. One Redis subscriber, per-session channels,
 * each message written to the session's sockets as it came. Run as its own process by the benchmark.
 *   node --import tsx bench/bare-relay.ts <port> <redisUrl>
 */
import { createServer } from "node:http";
import { Redis } from "ioredis";
import { type WebSocket, WebSocketServer } from "ws";

const port = Number(process.argv[2]);
const redisUrl = process.argv[3] ?? "redis://127.0.0.1:6379";
const subscriber = new Redis(redisUrl);
const sockets = new Map<string, Set<WebSocket>>();

subscriber.on("message", (channel: string, message: string) => {
  const set = sockets.get(channel);
  if (set) for (const ws of set) ws.send(message);
});

const server = createServer((_req, res) => res.end("ok"));
const wss = new WebSocketServer({ server });
wss.on("connection", (ws, req) => {
  const channel = new URL(req.url ?? "/", "http://x").searchParams.get("channel") ?? "none";
  let set = sockets.get(channel);
  if (!set) {
    set = new Set();
    sockets.set(channel, set);
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
server.listen(port, "127.0.0.1", () => console.log(`bare relay on ${port}`));
