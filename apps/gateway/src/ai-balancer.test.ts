import { once } from "node:events";
import {
  AiNodeRegistry,
  connectRedis,
  createLogger,
  createRedis,
  registrationTtlMs,
  SIGNATURE_HEADER,
  verifyRequest,
} from "@chatgrid/broker";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../../../packages/broker/src/test-redis";
import { AiBalancer } from "./ai-balancer";
import { createGatewayMetrics, type GatewayMetrics } from "./metrics";

const SECRET = "c".repeat(32);

type Behaviour =
  | "accept"
  | "conflict"
  | "error500"
  | "unavailable503"
  | "refused"
  | "timeout"
  | "notFound"
  | "wrongUrl";

/** AI nodes simulated behind an injected fetch; records every dispatch try, in order. */
class FakeNodes {
  readonly behaviour = new Map<string, Behaviour>();
  readonly dispatches: string[] = [];
  readonly bodies: unknown[] = [];
  readonly probes: string[] = [];

  constructor(names: string[]) {
    for (const name of names) this.behaviour.set(name, "accept");
  }

  set(name: string, behaviour: Behaviour): void {
    this.behaviour.set(name, behaviour);
  }

  setAll(behaviour: Behaviour): void {
    for (const name of this.behaviour.keys()) this.behaviour.set(name, behaviour);
  }

  static urlOf(name: string): string {
    return `http://${name}.test:7000`;
  }

  readonly fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const name = url.hostname.replace(/\.test$/, "");
    const behaviour = this.behaviour.get(name);
    if (url.pathname === "/health") {
      this.probes.push(name);
      return new Response("{}", { status: behaviour === "accept" ? 200 : 503 });
    }
    expect(url.pathname).toBe("/v1/streams");
    expect(init?.method).toBe("POST");
    // Every dispatch is signed with the cluster secret (the AI node refuses it otherwise).
    const signature = new Headers(init?.headers).get(SIGNATURE_HEADER) ?? undefined;
    expect(verifyRequest(SECRET, signature, "POST", "/v1/streams", String(init?.body))).toBe("ok");
    this.dispatches.push(name);
    this.bodies.push(JSON.parse(String(init?.body)));
    switch (behaviour) {
      case "accept":
        return new Response(JSON.stringify({ status: "claimed" }), { status: 202 });
      case "conflict":
        return new Response(JSON.stringify({ status: "already_claimed" }), { status: 409 });
      case "error500":
        return new Response("boom", { status: 500 });
      case "unavailable503":
        return new Response("draining", { status: 503 });
      case "wrongUrl":
        return new Response(JSON.stringify({ error: { code: "route_not_found", message: "no such route" } }), {
          status: 404,
        });
      case "notFound":
        return new Response(JSON.stringify({ error: { code: "stream_unknown", message: "no such stream" } }), {
          status: 404,
        });
      case "refused":
        throw new TypeError("fetch failed: connect ECONNREFUSED");
      case "timeout":
        // Never answers; only the balancer's timeout signal ends the try.
        return new Promise<Response>((_, reject) => {
          const signal = init?.signal;
          if (!signal) return reject(new Error("dispatch without a timeout signal"));
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      default:
        throw new Error(`unknown node ${name}`);
    }
  }) as typeof fetch;
}

function setup(names = ["ai-1", "ai-2", "ai-3"], dispatchTimeoutMs = 1000) {
  const nodes = new FakeNodes(names);
  const metrics = createGatewayMetrics();
  const balancer = new AiBalancer({
    clusterSecret: SECRET,
    staticNodes: names.map((name) => ({ name, url: FakeNodes.urlOf(name) })),
    dispatchTimeoutMs,
    cooldownMs: 60_000,
    probeIntervalMs: 60_000,
    log: createLogger("test", "silent"),
    metrics,
    fetch: nodes.fetch,
  });
  return { nodes, metrics, balancer };
}

const request = (n = 1) => ({ streamId: `st_${n}`, attempt: 1 });

async function counter(metrics: GatewayMetrics, name: "dispatchRetries" | "dispatches", labels?: object) {
  const values = (await metrics[name].get()).values;
  return values
    .filter(
      (v) => !labels || Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

async function healthOf(metrics: GatewayMetrics, node: string): Promise<number | undefined> {
  return (await metrics.aiNodeHealthy.get()).values.find((v) => v.labels.node === node)?.value;
}

describe("AiBalancer.dispatch", () => {
  it("goes round-robin over healthy nodes and posts the dispatch request", async () => {
    const { nodes, balancer, metrics } = setup();
    const results = [];
    for (let i = 1; i <= 6; i++) results.push(await balancer.dispatch(request(i)));
    expect(nodes.dispatches).toEqual(["ai-1", "ai-2", "ai-3", "ai-1", "ai-2", "ai-3"]);
    expect(results.map((r) => (r.ok ? r.node : "failed"))).toEqual(nodes.dispatches);
    expect(nodes.bodies[0]).toEqual({ streamId: "st_1", attempt: 1 });
    expect(await counter(metrics, "dispatches", { result: "accepted" })).toBe(6);
    expect(await counter(metrics, "dispatchRetries")).toBe(0);
  });

  it("moves to the next node on a connect error and on a 5xx, one try per node", async () => {
    const { nodes, balancer, metrics } = setup();
    nodes.set("ai-1", "refused");
    nodes.set("ai-2", "error500");
    expect(await balancer.dispatch(request())).toEqual({ ok: true, node: "ai-3", tried: 3 });
    expect(nodes.dispatches).toEqual(["ai-1", "ai-2", "ai-3"]);
    expect(await counter(metrics, "dispatchRetries")).toBe(2);
    expect(await healthOf(metrics, "ai-1")).toBe(0);
    expect(await healthOf(metrics, "ai-2")).toBe(0);
    expect(balancer.list().map((n) => [n.name, n.healthy])).toEqual([
      ["ai-1", false],
      ["ai-2", false],
      ["ai-3", true],
    ]);
  });

  it("a 503 (draining) moves on too", async () => {
    const { nodes, balancer } = setup(["ai-1", "ai-2"]);
    nodes.set("ai-1", "unavailable503");
    expect(await balancer.dispatch(request())).toMatchObject({ ok: true, node: "ai-2" });
    expect(nodes.dispatches).toEqual(["ai-1", "ai-2"]);
  });

  it("moves on after the dispatch timeout", async () => {
    const { nodes, balancer } = setup(["ai-1", "ai-2"], 50);
    nodes.set("ai-1", "timeout");
    const started = performance.now();
    expect(await balancer.dispatch(request())).toMatchObject({ ok: true, node: "ai-2" });
    const elapsed = performance.now() - started;
    expect(nodes.dispatches).toEqual(["ai-1", "ai-2"]);
    expect(elapsed).toBeGreaterThanOrEqual(40);
    expect(elapsed).toBeLessThan(1000);
  });

  it("when every node fails: {ok:false, tried:N}, each node tried exactly once", async () => {
    const { nodes, balancer, metrics } = setup(["ai-1", "ai-2", "ai-3", "ai-4"], 50);
    nodes.set("ai-1", "refused");
    nodes.set("ai-2", "error500");
    nodes.set("ai-3", "timeout");
    nodes.set("ai-4", "unavailable503");
    expect(await balancer.dispatch(request())).toEqual({ ok: false, tried: 4 });
    expect([...nodes.dispatches].sort()).toEqual(["ai-1", "ai-2", "ai-3", "ai-4"]);
    expect(await counter(metrics, "dispatches", { result: "no_ai_node" })).toBe(1);
    expect(await counter(metrics, "dispatchRetries")).toBe(3);
  });

  it("with no nodes at all: {ok:false, tried:0}", async () => {
    const { balancer } = setup([]);
    expect(await balancer.dispatch(request())).toEqual({ ok: false, tried: 0 });
  });

  it("counts 409 (already claimed or stale) as accepted and stops there", async () => {
    const { nodes, balancer } = setup();
    nodes.setAll("conflict");
    expect(await balancer.dispatch(request())).toMatchObject({ ok: true, node: "ai-1" });
    expect(nodes.dispatches).toEqual(["ai-1"]);
  });

  it("a 404 (unknown stream) stops without trying other nodes", async () => {
    const { nodes, balancer } = setup();
    nodes.set("ai-1", "notFound");
    expect(await balancer.dispatch(request())).toEqual({ ok: false, tried: 1 });
    expect(nodes.dispatches).toEqual(["ai-1"]);
  });

  it("a 404 of a wrong URL (route_not_found) is a failing node: marked down, the next one is tried", async () => {
    const { nodes, balancer } = setup();
    nodes.set("ai-1", "wrongUrl");
    expect(await balancer.dispatch(request())).toMatchObject({ ok: true, node: "ai-2" });
    expect(nodes.dispatches).toEqual(["ai-1", "ai-2"]);
    expect(balancer.list().find((n) => n.name === "ai-1")?.healthy).toBe(false);
  });

  it("tries a node marked down only after the healthy ones, and still tries it", async () => {
    const { nodes, balancer } = setup();
    nodes.set("ai-1", "error500");
    expect(await balancer.dispatch(request(1))).toMatchObject({ ok: true, node: "ai-2" });
    nodes.set("ai-1", "accept");
    // While ai-1 cools down, the healthy nodes take every dispatch whatever the rotation.
    nodes.dispatches.length = 0;
    for (let i = 2; i <= 7; i++) await balancer.dispatch(request(i));
    expect(nodes.dispatches).not.toContain("ai-1");
    expect(new Set(nodes.dispatches)).toEqual(new Set(["ai-2", "ai-3"]));
    // When the healthy ones fail, the node marked down is the last resort (a stale mark must not refuse a chat).
    nodes.set("ai-2", "error500");
    nodes.set("ai-3", "error500");
    nodes.dispatches.length = 0;
    expect(await balancer.dispatch(request(8))).toMatchObject({ ok: true, node: "ai-1" });
    expect(nodes.dispatches.at(-1)).toBe("ai-1");
    expect(nodes.dispatches).toHaveLength(3);
    expect(balancer.list().find((n) => n.name === "ai-1")?.healthy).toBe(true);
  });

  it("`avoid` puts that node last, whatever the rotation", async () => {
    for (const avoid of ["ai-1", "ai-2", "ai-3"]) {
      for (let rotation = 0; rotation < 3; rotation++) {
        const { nodes, balancer } = setup();
        for (let i = 0; i < rotation; i++) await balancer.dispatch(request(i)); // all accept: moves the cursor
        nodes.setAll("error500");
        nodes.dispatches.length = 0;
        expect(await balancer.dispatch(request(), avoid)).toEqual({ ok: false, tried: 3 });
        expect(nodes.dispatches, `avoid ${avoid}, rotation ${rotation}`).toHaveLength(3);
        expect(nodes.dispatches.at(-1), `avoid ${avoid}, rotation ${rotation}`).toBe(avoid);
      }
    }
  });

  it("`avoid` is tried after nodes that are merely marked down, too", async () => {
    for (let rotation = 0; rotation < 3; rotation++) {
      const { nodes, balancer } = setup();
      // ai-2 fails once and is marked down for the cool-down.
      nodes.set("ai-2", "error500");
      while (!nodes.dispatches.includes("ai-2")) await balancer.dispatch(request());
      nodes.set("ai-2", "accept");
      for (let i = 0; i < rotation; i++) await balancer.dispatch(request(i)); // moves the cursor
      expect(balancer.list().map((n) => n.healthy)).toEqual([true, false, true]);
      nodes.setAll("error500");
      nodes.dispatches.length = 0;
      await balancer.dispatch(request(), "ai-1");
      const order = nodes.dispatches.join(",");
      expect(nodes.dispatches, `rotation ${rotation}: ${order}`).toHaveLength(3);
      expect(nodes.dispatches.at(-1), `rotation ${rotation}: ${order}`).toBe("ai-1");
    }
  });
});

describe("AiBalancer.refresh", () => {
  it("the active probe marks nodes up and down", async () => {
    const { nodes, balancer, metrics } = setup(["ai-1", "ai-2"]);
    nodes.set("ai-2", "error500");
    await balancer.refresh();
    expect([...nodes.probes].sort()).toEqual(["ai-1", "ai-2"]);
    expect(balancer.list().map((n) => [n.name, n.healthy])).toEqual([
      ["ai-1", true],
      ["ai-2", false],
    ]);
    expect(await healthOf(metrics, "ai-2")).toBe(0);
    nodes.set("ai-2", "accept");
    await balancer.refresh();
    expect(balancer.list().every((n) => n.healthy)).toBe(true);
    expect(await healthOf(metrics, "ai-2")).toBe(1);
  });
});

describe("AiBalancer.refresh with the registry (a real Redis)", () => {
  let server: TestRedis;
  let redis: Redis;
  const GRACE_MS = registrationTtlMs(5000);
  const ai9 = { name: "ai-9", url: FakeNodes.urlOf("ai-9") };

  beforeAll(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url, "balancer-registry-test");
    redis.on("error", () => undefined);
    await connectRedis(redis, 10_000);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  /** A balancer with no static node, discovering through the registry, on a clock the test moves. */
  async function discovering() {
    await redis.flushall();
    const nodes = new FakeNodes(["ai-9"]);
    const registry = new AiNodeRegistry(redis, SECRET);
    const clock = { now: 1_000_000 };
    const balancer = new AiBalancer({
      clusterSecret: SECRET,
      staticNodes: [],
      registry,
      missingGraceMs: GRACE_MS,
      now: () => clock.now,
      dispatchTimeoutMs: 1000,
      cooldownMs: 60_000,
      probeIntervalMs: 60_000,
      log: createLogger("test", "silent"),
      metrics: createGatewayMetrics(),
      fetch: nodes.fetch,
    });
    await registry.heartbeat(ai9, GRACE_MS);
    await balancer.refresh();
    expect(balancer.list().map((n) => n.name)).toEqual(["ai-9"]);
    return { nodes, registry, clock, balancer };
  }

  it("keeps a healthy node through a Redis that was away and came back without the registry, until the grace", async () => {
    const { clock, balancer } = await discovering();
    // Redis away: the registry cannot be read; the node stays, and its grace does not start.
    const ended = once(redis, "end");
    redis.disconnect();
    await ended;
    clock.now += 10 * GRACE_MS;
    await balancer.refresh();
    expect(balancer.list().map((n) => n.name)).toEqual(["ai-9"]);
    // Back, empty (restarted without persistence): the node still answers its probe, so chats still go to it.
    await redis.connect();
    await redis.flushall();
    await balancer.refresh();
    expect(balancer.list().map((n) => n.name)).toEqual(["ai-9"]);
    expect(await balancer.dispatch(request())).toEqual({ ok: true, node: "ai-9", tried: 1 });
    // Not listed again within the registration's TTL: it is gone for good.
    clock.now += GRACE_MS - 1;
    await balancer.refresh();
    expect(balancer.list().map((n) => n.name)).toEqual(["ai-9"]);
    clock.now += 1;
    await balancer.refresh();
    expect(balancer.list()).toEqual([]);
    expect(await balancer.dispatch(request())).toEqual({ ok: false, tried: 0 });
  });

  it("a node listed again within the grace is kept, and its grace starts over", async () => {
    const { registry, clock, balancer } = await discovering();
    await redis.flushall();
    await balancer.refresh();
    clock.now += GRACE_MS - 1;
    await registry.heartbeat(ai9, GRACE_MS);
    await balancer.refresh();
    await redis.flushall();
    clock.now += GRACE_MS - 1;
    await balancer.refresh();
    expect(balancer.list().map((n) => n.name)).toEqual(["ai-9"]);
  });

  it("drops a node that left the registry at the first refresh whose probe fails (a draining node answers 503)", async () => {
    const { nodes, registry, balancer } = await discovering();
    await registry.leave(ai9);
    nodes.set("ai-9", "unavailable503");
    await balancer.refresh();
    expect(balancer.list()).toEqual([]);
  });
});
