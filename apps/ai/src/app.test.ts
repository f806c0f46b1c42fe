import { type PromptMessage, SIGNATURE_HEADER, type StreamMeta, signRequest } from "@chatgrid/broker";
import { AiHealthResponseSchema, LiveResponseSchema } from "@chatgrid/protocol";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { type AiAppDeps, createAiApp } from "./app";
import { createAiMetrics } from "./metrics";
import type { ClaimedRun } from "./stream-run";

const SECRET = "s".repeat(32);

/** An AI app whose store fails the way a Redis fault does: its text names a host, a port and a key. */
function failingApp(overrides: Partial<AiAppDeps> = {}) {
  const lines: string[] = [];
  const metrics = createAiMetrics();
  const launched: string[] = [];
  const app = createAiApp({
    node: "ai-1",
    store: {
      claim: async () => {
        throw new Error("connect ECONNREFUSED 10.0.0.5:6379 while running EVALSHA on cg:stream:st_abc:meta");
      },
    },
    metrics,
    providerName: "demo",
    redisReady: () => true,
    draining: () => false,
    running: () => 0,
    maxConcurrent: 10,
    clusterSecret: SECRET,
    log: pino({ level: "debug" }, { write: (line: string) => lines.push(line) }),
    readPrompt: async () => [],
    launch: (streamId) => launched.push(streamId),
    ...overrides,
  });
  return { app, lines, metrics, launched };
}

describe("AI app error handler", () => {
  it("answers an unexpected fault with a generic internal_error and logs the detail", async () => {
    const { app, lines, metrics, launched } = failingApp();
    const body = JSON.stringify({ streamId: "st_abc", attempt: 1 });
    const response = await app.request("/v1/streams", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: signRequest(SECRET, "POST", "/v1/streams", body),
      },
      body,
    });
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal_error", message: "internal error" } });
    expect(text).not.toMatch(/ECONNREFUSED|10\.0\.0\.5|6379|cg:stream/);
    expect(launched).toEqual([]);
    // The operator gets the detail, at warn, and a count.
    const logged = lines.map(
      (line) => JSON.parse(line) as { level: number; err?: { message?: string }; path?: string },
    );
    expect(logged).toContainEqual(
      expect.objectContaining({
        level: 40,
        path: "/v1/streams",
        err: expect.objectContaining({ message: expect.stringContaining("ECONNREFUSED 10.0.0.5:6379") }),
      }),
    );
    expect((await metrics.httpErrors.get()).values[0]?.value).toBe(1);
  });
});

describe("dispatch credentials", () => {
  const post = (app: ReturnType<typeof failingApp>["app"], body: string, headers: Record<string, string>) =>
    app.request("/v1/streams", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

  it("refuses a call without a well-formed signature with 401, counted by why", async () => {
    const { app, metrics, launched } = failingApp();
    const body = JSON.stringify({ streamId: "st_abc", attempt: 1 });
    expect((await post(app, body, {})).status).toBe(401);
    expect((await post(app, body, { [SIGNATURE_HEADER]: "Bearer secret" })).status).toBe(401);
    const stale = signRequest(SECRET, "POST", "/v1/streams", body, Date.now() - 60_000);
    expect((await post(app, body, { [SIGNATURE_HEADER]: stale })).status).toBe(401);
    const foreign = signRequest("f".repeat(32), "POST", "/v1/streams", body);
    const refused = await post(app, body, { [SIGNATURE_HEADER]: foreign });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const text = await metrics.registry.metrics();
    for (const reason of ["missing", "malformed", "stale", "bad_signature"]) {
      expect(text).toMatch(new RegExp(`^chatgrid_ai_unauthorized_dispatches_total\\{reason="${reason}"\\} 1$`, "m"));
    }
    expect(launched).toEqual([]);
  });

  it("reads no body past 4 KiB, even with a signature of the right shape", async () => {
    const { app, launched } = failingApp();
    const body = JSON.stringify({ streamId: "st_abc", attempt: 1, padding: "x".repeat(10_000) });
    const response = await post(app, body, { [SIGNATURE_HEADER]: signRequest(SECRET, "POST", "/v1/streams", body) });
    expect(response.status).toBe(413);
    expect(launched).toEqual([]);
  });
});

describe("a stream's first dispatch: its ids go to the claim, and its prompt is read beside it", () => {
  const ids = { sessionId: "sess_a", conversationId: "conv_a", messageId: "msg_b", userMessageId: "msg_a" };
  const meta: StreamMeta = {
    streamId: "st_abc",
    ...ids,
    status: "running",
    attempt: 1,
    seq: 0,
    textSeq: 0,
    cancelRequested: false,
    createdAt: 1,
  };
  const signed = (body: string) => ({
    "content-type": "application/json",
    [SIGNATURE_HEADER]: signRequest(SECRET, "POST", "/v1/streams", body),
  });

  it("sends the prompt read before the claim's reply, and launches the run with both", async () => {
    const order: string[] = [];
    const launches: ClaimedRun[] = [];
    const prompt: PromptMessage[] = [{ role: "user", content: "hi" }];
    const { app } = failingApp({
      store: {
        claim: async (_streamId, _attempt, _node, start) => {
          order.push(`claim ${JSON.stringify(start)}`);
          await Promise.resolve();
          order.push("claim replied");
          return { status: "claimed", cancelRequested: false, meta, started: true };
        },
      },
      readPrompt: async (conversationId, userMessageId) => {
        order.push(`prompt ${conversationId} ${userMessageId}`);
        return prompt;
      },
      launch: (_streamId, _attempt, _cancel, claimed) => launches.push(claimed),
    });
    const body = JSON.stringify({ streamId: "st_abc", attempt: 1, start: ids });
    const response = await app.request("/v1/streams", { method: "POST", headers: signed(body), body });
    expect(response.status).toBe(202);
    expect(order).toEqual([`claim ${JSON.stringify(ids)}`, "prompt conv_a msg_a", "claim replied"]);
    expect(launches).toHaveLength(1);
    expect(launches[0]).toMatchObject({ meta, started: true });
    expect(await launches[0]?.prompt).toEqual(prompt);
  });

  it("a takeover's dispatch (no ids) reads no prompt there; ids of the wrong shape are a 400", async () => {
    const launches: ClaimedRun[] = [];
    let prompts = 0;
    const { app } = failingApp({
      store: { claim: async () => ({ status: "claimed", cancelRequested: false, meta, started: false }) },
      readPrompt: async () => {
        prompts++;
        return [];
      },
      launch: (_streamId, _attempt, _cancel, claimed) => launches.push(claimed),
    });
    const takeover = JSON.stringify({ streamId: "st_abc", attempt: 2 });
    expect(
      (await app.request("/v1/streams", { method: "POST", headers: signed(takeover), body: takeover })).status,
    ).toBe(202);
    expect(prompts).toBe(0);
    expect(launches[0]).toEqual({ meta, started: false });
    const bad = JSON.stringify({ streamId: "st_abc", attempt: 1, start: { ...ids, sessionId: "not an id!" } });
    expect((await app.request("/v1/streams", { method: "POST", headers: signed(bad), body: bad })).status).toBe(400);
    expect(prompts).toBe(0);
  });
});

describe("GET /live (liveness) next to GET /health (readiness)", () => {
  const states: [string, Partial<AiAppDeps>, string][] = [
    ["Redis down", { redisReady: () => false }, "degraded"],
    ["draining", { draining: () => true }, "draining"],
    ["draining with Redis down", { draining: () => true, redisReady: () => false }, "draining"],
  ];

  it.each(states)("%s: /health is 503 (%s), /live is 200", async (_what, overrides, status) => {
    const { app } = failingApp(overrides);
    const health = await app.request("/health");
    expect(health.status).toBe(503);
    expect(AiHealthResponseSchema.parse(await health.json()).status).toBe(status);
    const live = await app.request("/live");
    expect(live.status).toBe(200);
    expect(live.headers.get("content-type")).toMatch(/^application\/json/);
    expect(LiveResponseSchema.parse(await live.json())).toEqual({ status: "live", node: "ai-1" });
  });

  it("both 200 when ready; at MAX_CONCURRENT_STREAMS the node stays live and ready (busy is per dispatch)", async () => {
    for (const running of [0, 10]) {
      const { app } = failingApp({ running: () => running });
      expect((await app.request("/health")).status).toBe(200);
      expect((await app.request("/live")).status).toBe(200);
    }
  });

  it("needs no signature, and a bad one is neither refused nor counted as an unauthorized dispatch", async () => {
    const { app, metrics } = failingApp();
    expect((await app.request("/live")).status).toBe(200);
    expect((await app.request("/live", { headers: { [SIGNATURE_HEADER]: "t=1,v1=00" } })).status).toBe(200);
    expect(await metrics.registry.metrics()).not.toMatch(/^chatgrid_ai_unauthorized_dispatches_total\{/m);
    // Only GET: anything else on /live is an unknown route, like any other path.
    const post = await app.request("/live", { method: "POST" });
    expect(post.status).toBe(404);
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe("route_not_found");
  });

  it("reads nothing: with Redis's check, the drain flag and the run count all throwing, /live is 200", async () => {
    const boom = () => {
      throw new Error("liveness must not read this");
    };
    const { app, lines } = failingApp({ redisReady: boom, draining: boom, running: boom });
    const live = await app.request("/live");
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "live", node: "ai-1" });
    // The readiness route does read them: it fails (500, logged), which shows the fakes above were armed.
    expect((await app.request("/health")).status).toBe(500);
    expect(lines.some((line) => line.includes("liveness must not read this"))).toBe(true);
  });
});
