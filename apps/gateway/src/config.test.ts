import { describe, expect, it } from "vitest";
import { loadGatewayConfig, parseAiServiceUrls } from "./config";

/** A cluster secret of the minimum length: every node needs one. */
const SECRET = "s".repeat(32);

/** Loads with the given variables only (never the test process's environment), plus the required cluster secret. */
const load = (env: Record<string, string | undefined> = {}) => loadGatewayConfig({ CLUSTER_SECRET: SECRET, ...env });

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`threw a non-Error: ${String(error)}`);
  }
  throw new Error("did not throw");
}

describe("loadGatewayConfig", () => {
  it("has working defaults", () => {
    const config = load();
    expect(config).toMatchObject({
      NODE_NAME: "gateway-1",
      HOST: "127.0.0.1",
      PORT: 8081,
      METRICS_PORT: 9081,
      REDIS_URL: "redis://127.0.0.1:6379",
      HISTORY_TTL_MS: 24 * 60 * 60 * 1000,
      HISTORY_MAX_LEN: 10_000,
      STREAM_LEASE_MS: 5000,
      DISPATCH_DEADLINE_MS: 10_000,
      WS_SEND_BUFFER_BYTES: 1024 * 1024,
      HELLO_TIMEOUT_MS: 10_000,
      DISPATCH_TIMEOUT_MS: 3000,
      discovery: true,
      aiNodes: [],
    });
    expect(config.allowedOrigins).toEqual(["http://localhost:3000", "http://127.0.0.1:3000"]);
  });

  it("reads and coerces the variables", () => {
    const config = load({
      NODE_NAME: "gateway-7",
      PORT: "0",
      METRICS_PORT: "19081",
      REDIS_URL: "rediss://user:pw@cache.example:6380",
      AI_SERVICE_URLS: "http://127.0.0.1:7001, http://127.0.0.1:7002/",
      AI_DISCOVERY: "false",
      ALLOWED_ORIGINS: " https://chat.example , ,http://localhost:5173",
      WS_SEND_BUFFER_BYTES: "65536",
    });
    expect(config.NODE_NAME).toBe("gateway-7");
    expect(config.PORT).toBe(0);
    expect(config.METRICS_PORT).toBe(19081);
    expect(config.REDIS_URL).toBe("rediss://user:pw@cache.example:6380");
    expect(config.discovery).toBe(false);
    expect(config.aiNodes).toEqual([
      { name: "ai-1", url: "http://127.0.0.1:7001" },
      { name: "ai-2", url: "http://127.0.0.1:7002" },
    ]);
    expect(config.allowedOrigins).toEqual(["https://chat.example", "http://localhost:5173"]);
    expect(config.WS_SEND_BUFFER_BYTES).toBe(65536);
  });

  it.each([
    ["PORT", "abc"],
    ["PORT", "-1"],
    ["PORT", "1.5"],
    ["REDIS_URL", "http://x"],
    ["REDIS_URL", "localhost:6379"],
    ["HELLO_TIMEOUT_MS", "0"],
    ["HISTORY_MAX_LEN", "5"],
    ["STREAM_LEASE_MS", "100"],
    ["AI_DISCOVERY", "maybe"],
    ["WS_SEND_BUFFER_BYTES", "lots"],
  ])("%s=%s is refused with a message naming the variable", (name, value) => {
    const error = errorOf(() => load({ [name]: value }));
    expect(error.message).toContain(name);
    expect(error.message).toContain("invalid configuration");
  });

  it("refuses to start without the cluster secret, or with one too short to be a secret", () => {
    expect(errorOf(() => loadGatewayConfig({})).message).toContain(
      "CLUSTER_SECRET: required: a random secret of at least 32 characters shared by every node",
    );
    expect(errorOf(() => load({ CLUSTER_SECRET: "x".repeat(31) })).message).toContain(
      "CLUSTER_SECRET: at least 32 characters",
    );
  });

  it("names every bad variable in one message", () => {
    const error = errorOf(() => load({ PORT: "abc", REDIS_URL: "http://x" }));
    expect(error.message).toContain("PORT");
    expect(error.message).toContain("REDIS_URL");
  });

  it("refuses a bad AI_SERVICE_URLS entry, naming the variable", () => {
    const error = errorOf(() => load({ AI_SERVICE_URLS: "http://ok:1,not-a-url" }));
    expect(error.message).toContain("AI_SERVICE_URLS");
    expect(error.message).toContain("not-a-url");
  });

  it("refuses to start without any AI node source", () => {
    const error = errorOf(() => load({ AI_DISCOVERY: "false" }));
    expect(error.message).toContain("AI_SERVICE_URLS");
    expect(load({ AI_DISCOVERY: "false", AI_SERVICE_URLS: "http://a:1" }).aiNodes).toHaveLength(1);
  });

  it("an empty PORT is not silently port 0 (a random port nginx cannot find)", () => {
    // Container environments often pass `PORT=` for an unset variable. Either the default or an error is fine.
    let port: number | undefined;
    try {
      port = load({ PORT: "" }).PORT;
    } catch (error) {
      expect((error as Error).message).toContain("PORT");
      return;
    }
    expect(port).toBe(8081);
  });
});

describe("parseAiServiceUrls", () => {
  it("names unnamed nodes ai-1..M by position and strips trailing slashes", () => {
    expect(parseAiServiceUrls("http://10.0.0.1:7001,https://ai.example/base/")).toEqual([
      { name: "ai-1", url: "http://10.0.0.1:7001" },
      { name: "ai-2", url: "https://ai.example/base" },
    ]);
  });

  it("takes name=url entries", () => {
    expect(parseAiServiceUrls("alpha=http://a:7001, beta=http://b:7002//")).toEqual([
      { name: "alpha", url: "http://a:7001" },
      { name: "beta", url: "http://b:7002" },
    ]);
  });

  it("mixes named and unnamed entries", () => {
    expect(parseAiServiceUrls("alpha=http://a:1,http://b:2")).toEqual([
      { name: "alpha", url: "http://a:1" },
      { name: "ai-2", url: "http://b:2" },
    ]);
  });

  it("ignores empty entries and whitespace", () => {
    expect(parseAiServiceUrls("")).toEqual([]);
    expect(parseAiServiceUrls(" , ,")).toEqual([]);
    expect(parseAiServiceUrls(" http://a:1 ,, ")).toEqual([{ name: "ai-1", url: "http://a:1" }]);
  });

  it.each(["ftp://a:1", "a:7001", "name=", "name=localhost:7001", "http://", "=http://a:1"])(
    "refuses %s with a message naming AI_SERVICE_URLS",
    (value) => {
      expect(() => parseAiServiceUrls(value)).toThrow(/AI_SERVICE_URLS/);
    },
  );
});
