import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

let cluster: TestCluster;
let owner: ChatClient;
let ownerStream: { streamId: string; conversationId: string };

beforeAll(async () => {
  cluster = await TestCluster.start({
    gateways: 1,
    aiNodes: 1,
    env: { HELLO_TIMEOUT_MS: "400", WS_FRAMES_PER_SECOND: "20", WS_FRAME_BURST: "40" },
  });
  owner = new ChatClient(cluster.gatewayUrl(0));
  await owner.connect();
  ownerStream = await owner.chat("[demo:tokens=3] the owner's conversation");
  await owner.done(ownerStream.streamId);
});
afterAll(async () => {
  owner?.close();
  await cluster?.stop();
});

const forgedToken = () => randomBytes(32).toString("base64url");

interface RestCase {
  name: string;
  method: string;
  path: string | (() => string);
  body?: unknown;
  auth?: "none" | "forged" | "malformed" | "basic";
  status: number;
  code: string;
}

const REST_CASES: RestCase[] = [
  { name: "malformed JSON", method: "POST", path: "/api/chat", body: '{"message": ', status: 400, code: "bad_request" },
  { name: "wrong type", method: "POST", path: "/api/chat", body: { message: 5 }, status: 400, code: "bad_request" },
  { name: "empty message", method: "POST", path: "/api/chat", body: { message: "" }, status: 400, code: "bad_request" },
  {
    name: "message over 32000 chars",
    method: "POST",
    path: "/api/chat",
    body: { message: "x".repeat(32_001) },
    status: 400,
    code: "bad_request",
  },
  {
    name: "clientMessageId over 64 chars",
    method: "POST",
    path: "/api/chat",
    body: { message: "hi", clientMessageId: "c".repeat(65) },
    status: 400,
    code: "bad_request",
  },
  {
    name: "body over 64 KiB",
    method: "POST",
    path: "/api/chat",
    body: { message: "y".repeat(70_000) },
    status: 413,
    code: "payload_too_large",
  },
  { name: "JSON array body", method: "POST", path: "/api/cancel", body: [1, 2], status: 400, code: "bad_request" },
  {
    name: "no token",
    method: "POST",
    path: "/api/chat",
    body: { message: "hi" },
    auth: "none",
    status: 401,
    code: "unauthorized",
  },
  {
    name: "forged token",
    method: "GET",
    path: "/api/conversations",
    auth: "forged",
    status: 401,
    code: "unauthorized",
  },
  {
    name: "malformed bearer",
    method: "GET",
    path: "/api/conversations",
    auth: "malformed",
    status: 401,
    code: "unauthorized",
  },
  { name: "basic auth", method: "GET", path: "/api/conversations", auth: "basic", status: 401, code: "unauthorized" },
  { name: "history without conversationId", method: "GET", path: "/api/history", status: 400, code: "bad_request" },
  {
    name: "history of an unknown conversation",
    method: "GET",
    path: "/api/history?conversationId=conv_nope",
    status: 404,
    code: "not_found",
  },
  {
    name: "history of another session's conversation",
    method: "GET",
    path: () => `/api/history?conversationId=${ownerStream.conversationId}`,
    status: 404,
    code: "not_found",
  },
  {
    name: "chat into another session's conversation",
    method: "POST",
    path: "/api/chat",
    body: () => ({ message: "hi", conversationId: ownerStream.conversationId }),
    status: 404,
    code: "not_found",
  },
  {
    name: "cancel of an unknown stream",
    method: "POST",
    path: "/api/cancel",
    body: { streamId: "st_unknown" },
    status: 404,
    code: "not_found",
  },
  {
    name: "cancel of another session's stream",
    method: "POST",
    path: "/api/cancel",
    body: () => ({ streamId: ownerStream.streamId }),
    status: 404,
    code: "not_found",
  },
  {
    name: "cancel with an id of bad characters",
    method: "POST",
    path: "/api/cancel",
    body: { streamId: "../../etc" },
    status: 400,
    code: "bad_request",
  },
  { name: "unknown route", method: "GET", path: "/api/nope", status: 404, code: "route_not_found" },
];

describe("bad REST input gets the docs/protocol.md status and error body", () => {
  const stranger = () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    return client;
  };
  let token: string;
  beforeAll(async () => {
    const client = stranger();
    await client.createSession();
    token = client.token!;
  });

  it.each(REST_CASES)("$name → $status $code", async (testCase) => {
    const client = stranger();
    const auth = testCase.auth ?? "valid";
    const headers: Record<string, string> = {};
    if (auth === "valid") client.token = token;
    if (auth === "forged") client.token = forgedToken();
    if (auth === "malformed") headers.authorization = "Bearer";
    if (auth === "basic") headers.authorization = `Basic ${Buffer.from("a:b").toString("base64")}`;
    const path = typeof testCase.path === "function" ? testCase.path() : testCase.path;
    const body = typeof testCase.body === "function" ? (testCase.body as () => unknown)() : testCase.body;
    const response = await client.request(testCase.method, path, body, headers);
    expect(response.status).toBe(testCase.status);
    expect(response.body.error?.code, JSON.stringify(response.body)).toBe(testCase.code);
    expect(typeof response.body.error?.message).toBe("string");
  });
});

/** Opens a raw socket, sends `frames` in order, returns the close code and the frames received. */
async function rawSocket(frames: (string | Buffer)[], options: { origin?: string; waitClose?: boolean } = {}) {
  const ws = new WebSocket(cluster.wsUrl(0), options.origin ? { origin: options.origin } : {});
  const received: Record<string, unknown>[] = [];
  ws.on("message", (data) => received.push(JSON.parse(data.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  const errored = new Promise<Error>((resolve) => ws.on("error", resolve));
  const opened = await Promise.race([once(ws, "open").then(() => true), errored.then(() => false)]);
  if (!opened) return { code: -1, received, error: await errored };
  for (const frame of frames) ws.send(frame);
  return { code: await closed, received, error: undefined };
}

describe("bad WebSocket input gets the docs/protocol.md close code or error frame", () => {
  const hello = JSON.stringify({ type: "hello" });
  const CLOSE_CASES: { name: string; frames: () => (string | Buffer)[]; code: number }[] = [
    { name: "first frame not JSON", frames: () => ["not json"], code: 4400 },
    { name: "first frame not hello", frames: () => [JSON.stringify({ type: "ping" })], code: 4400 },
    { name: "hello with a wrong type", frames: () => [JSON.stringify({ type: "hello", token: 5 })], code: 4400 },
    { name: "unknown frame type first", frames: () => [JSON.stringify({ type: "bogus" })], code: 4400 },
    { name: "forged token", frames: () => [JSON.stringify({ type: "hello", token: forgedToken() })], code: 4401 },
    { name: "malformed token", frames: () => [JSON.stringify({ type: "hello", token: "abc" })], code: 4401 },
    { name: "no hello in time", frames: () => [], code: 4408 },
    { name: "frame over 64 KiB", frames: () => [hello, "x".repeat(65 * 1024 + 1)], code: 1009 },
    { name: "five bad frames in a row after hello", frames: () => [hello, "{", "{", "{", "{", "{"], code: 4400 },
    {
      name: "a flood of frames",
      frames: () => [hello, ...Array.from({ length: 200 }, () => JSON.stringify({ type: "ping" }))],
      code: 4429,
    },
  ];

  it.each(CLOSE_CASES)("$name → close $code", async ({ frames, code }) => {
    const result = await rawSocket(frames());
    expect(result.code).toBe(code);
  });

  it("a socket from an origin not on the allow-list is refused (403) before the upgrade", async () => {
    const result = await rawSocket([hello], { origin: "https://evil.example" });
    expect(result.code).toBe(-1);
    expect(String(result.error)).toContain("403");
  });

  it("after hello, single bad frames get error frames and the socket stays usable", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const pending = client.nextMany((f) => f.type === "error", 5);
    client.send("{broken");
    client.send({ type: "resume", streams: "nope" });
    client.send(Buffer.from([1, 2, 3]));
    client.send({ type: "resume", streams: [{ streamId: "st_missing", afterSeq: 0 }] });
    client.send({ type: "resume", streams: [{ streamId: ownerStream.streamId }] });
    const errors = (await pending) as unknown as Record<string, unknown>[];
    expect(errors.map((e) => e.code)).toEqual([
      "bad_request",
      "bad_request",
      "bad_request",
      "stream_unknown",
      "stream_unknown",
    ]);
    expect(errors.slice(3).map((e) => e.streamId)).toEqual(["st_missing", ownerStream.streamId]);
    // Nothing of the other session's stream leaked.
    expect(client.frames.some((f) => f.type === "chunk" || f.type === "start")).toBe(false);
    client.send({ type: "ping" });
    await client.next((f) => f.type === "pong");
    const accepted = await client.chat("[demo:tokens=3] still works");
    expect((await client.done(accepted.streamId)).done?.finishReason).toBe("stop");
    client.close();
  });

  it("no bad input crashed the gateway or the AI node", () => {
    expect(cluster.gateways[0]!.alive).toBe(true);
    expect(cluster.ai[0]!.alive).toBe(true);
  });
});

describe("per-session rate limit", () => {
  let limited: TestCluster;
  beforeAll(async () => {
    limited = await TestCluster.start({
      gateways: 1,
      aiNodes: 1,
      env: { SESSION_RATE_LIMIT: "3", SESSION_RATE_WINDOW_MS: "60000", SESSION_RATE_BURST: "3" },
    });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("answers 429 with Retry-After past the session's rate", async () => {
    const client = new ChatClient(limited.gatewayUrl(0));
    await client.createSession();
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await client.request("GET", "/api/conversations")).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const response = await client.request("GET", "/api/conversations");
    expect(response.body.error?.code).toBe("rate_limited");
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });
});
