import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClusterInfo, ClusterRunner } from "./cluster-runner";
import { freePorts } from "./ports";

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Every live process below `root` (children, grandchildren, ...), from /proc. */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // Gone while listing.
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
}

const tempDirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-runner-test-"));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const quickNodes = { SHUTDOWN_GRACE_MS: "2000", LOG_LEVEL: "warn", DEMO_MAX_TOKENS: "5" };

describe("ClusterRunner: 2 gateways + 1 AI node + Redis behind nginx", () => {
  let runner: ClusterRunner | undefined;
  let stateDir: string;
  let info: ClusterInfo;
  let descendantsWhileUp: number[] = [];

  beforeAll(async () => {
    stateDir = tempDir();
    runner = await ClusterRunner.start({
      stateDir,
      topology: { gatewayNodes: 2, aiNodes: 1, nodeEnv: quickNodes },
      publicPortsMayBeFree: true,
      restart: true,
      nginx: true,
    });
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it("writes cluster.json listing redis, ai-1, gateway-1, gateway-2 and nginx with live pids, ports and urls", () => {
    const file = join(stateDir, "cluster.json");
    expect(existsSync(file)).toBe(true);
    info = JSON.parse(readFileSync(file, "utf8")) as ClusterInfo;
    expect(info.processes.map((p) => p.name)).toEqual(["redis", "ai-1", "gateway-1", "gateway-2", "nginx"]);
    expect(info.processes.map((p) => p.role)).toEqual(["redis", "ai", "gateway", "gateway", "nginx"]);
    expect(info.runnerPid).toBe(process.pid);
    expect(info.stateDir).toBe(stateDir);
    expect(info.urls).toEqual(runner!.urls);
    expect(info.redisUrl).toBe(runner!.redisUrl);
    for (const p of info.processes) {
      expect(p.pid, p.name).toBeTypeOf("number");
      expect(isAlive(p.pid!), `${p.name} pid ${p.pid} alive`).toBe(true);
      expect(p.pid, p.name).toBe(runner!.node(p.name).pid);
      expect(p.state, p.name).toBe("running");
      expect(p.restarts, p.name).toBe(0);
      expect(p.port, p.name).toBeGreaterThan(0);
      expect(p.url, p.name).toMatch(new RegExp(`^(http|redis)://127\\.0\\.0\\.1:${p.port}$`));
      expect(existsSync(p.logFile), p.logFile).toBe(true);
    }
    const byName = new Map(info.processes.map((p) => [p.name, p]));
    expect(byName.get("redis")!.url).toBe(info.redisUrl);
    expect(byName.get("nginx")!.url).toBe(info.urls.chat);
    expect(byName.get("nginx")!.port).toBe(runner!.ports.http);
    for (const node of [...runner!.topology.gateways, ...runner!.topology.aiNodes]) {
      expect(byName.get(node.name)!.port).toBe(node.port);
      expect(byName.get(node.name)!.url).toBe(node.url);
    }
    descendantsWhileUp = descendants(process.pid);
    for (const p of info.processes) expect(descendantsWhileUp).toContain(p.pid);
  });

  it("gives every process its own port", () => {
    const { gateways, aiNodes } = runner!.topology;
    const ports = [
      runner!.ports.http,
      runner!.ports.web,
      runner!.ports.metrics,
      Number(new URL(runner!.redisUrl).port),
      ...gateways.flatMap((g) => [g.port, g.metricsPort]),
      ...aiNodes.map((n) => n.port),
    ];
    expect(new Set(ports).size, `ports ${ports.join(", ")}`).toBe(ports.length);
  });

  it("runs nginx on exactly the configuration the renderer produces", () => {
    const conf = readFileSync(join(stateDir, "nginx", "nginx.conf"), "utf8");
    expect(conf).toBe(runner!.renderNginx());
    for (const g of runner!.topology.gateways) expect(conf).toContain(`server ${g.host}:${g.port} max_fails=2`);
    expect(conf).toContain(`listen 127.0.0.1:${runner!.ports.http};`);
  });

  it("answers GET /api/health through nginx with 200 and status ok; the internal /health names the AI node", async () => {
    const response = await fetch(`${runner!.urls.chat}/api/health`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      status: string;
      node: string;
      redis: string;
      aiNodes: { healthy: number; total: number };
    };
    expect(body.status).toBe("ok");
    expect(body.redis).toBe("up");
    expect(["gateway-1", "gateway-2"]).toContain(body.node);
    expect(body.aiNodes).toEqual({ healthy: 1, total: 1 });
    const gateway = runner!.topology.gateways[0]!;
    const internal = (await (await fetch(`http://${gateway.host}:${gateway.metricsPort}/health`)).json()) as {
      aiNodes: { name: string }[];
    };
    expect(internal.aiNodes.map((n) => n.name)).toContain("ai-1");
  });

  it("serves /healthz and stub_status", async () => {
    const health = await fetch(`${runner!.urls.chat}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok\n");
    const stub = await fetch(runner!.urls.metrics);
    expect(await stub.text()).toContain("Active connections");
  });

  it("stop() ends every listed process (and what they started) and removes cluster.json", async () => {
    const listed = info.processes.map((p) => p.pid!);
    expect(listed).toHaveLength(5);
    await runner!.stop();
    for (const p of info.processes) expect(isAlive(p.pid!), `${p.name} pid ${p.pid} still alive`).toBe(false);
    for (const p of info.processes) expect(() => process.kill(p.pid!, 0), p.name).toThrow();
    expect(existsSync(join(stateDir, "cluster.json"))).toBe(false);
    // Nothing was restarted by the supervision while stopping.
    for (const p of runner!.processes.values()) {
      expect(p.state, p.name).toBe("stopped");
      expect(p.alive, p.name).toBe(false);
    }
    expect(descendants(process.pid).filter((pid) => descendantsWhileUp.includes(pid))).toEqual([]);
    // Idempotent.
    await expect(runner!.stop()).resolves.toBeUndefined();
  });
});

describe("ClusterRunner: a public port that is taken", () => {
  const held: Server[] = [];
  afterAll(async () => {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  const holdPort = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const server = createServer();
      held.push(server);
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        resolve(typeof address === "object" && address ? address.port : 0);
      });
    });

  it.each(["httpPort", "webPort", "metricsPort"] as const)(
    "%s in use: start rejects naming the port, and leaves no process behind",
    async (key) => {
      const taken = await holdPort();
      const [http, web, metrics] = await freePorts(3);
      const topology = {
        gatewayNodes: 1,
        aiNodes: 1,
        httpPort: http,
        webPort: web,
        metricsPort: metrics,
        [key]: taken,
      };
      const before = descendants(process.pid);
      const stateDir = tempDir();
      const error = await ClusterRunner.start({
        stateDir,
        topology,
        publicPortsMayBeFree: false,
        restart: true,
        nginx: true,
      }).then(
        async (runner) => {
          await runner.stop();
          return undefined;
        },
        (e: Error) => e,
      );
      expect(error, "start resolved although the port is taken").toBeInstanceOf(Error);
      expect(error!.message).toContain("already in use");
      expect(error!.message).toContain(String(taken));
      expect(descendants(process.pid).filter((pid) => !before.includes(pid))).toEqual([]);
      expect(existsSync(join(stateDir, "cluster.json"))).toBe(false);
    },
  );
});
