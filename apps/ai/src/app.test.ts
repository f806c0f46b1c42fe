import { SIGNATURE_HEADER, signRequest } from "@chatgrid/broker";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createAiApp } from "./app";
import { createAiMetrics } from "./metrics";

const SECRET = "s".repeat(32);

/** An AI app whose store fails the way a Redis fault does: its text names a host, a port and a key. */
function failingApp() {
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
    launch: (streamId) => launched.push(streamId),
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
