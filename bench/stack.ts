/**
 * One system under test as processes on loopback, on free ports (docs/benchmarks.md, "Method"):
 *  - its own Redis, from the runner's redis.conf writer (AOF on, a password, the runner's memory bound);
 *  - the relay: bench/bare-relay.ts, bench/socketio-server.ts, or one chatgrid gateway with the environment the
 *    topology gives it (as `npm start` runs it);
 *  - nginx, from the ONE renderer (infra/nginx/render.ts) with the relay as the single upstream: every system pays
 *    the same proxy, byte for byte the same file but for ports and paths.
 * Run as root, Redis and nginx's workers run as `nobody`, as the runner runs them.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { NGINX_TEMP_DIRS, renderNginxConf } from "../infra/nginx/render";
import {
  binaryPath,
  chownTree,
  DEFAULT_REDIS_MAXMEMORY,
  ensureBinaries,
  freePorts,
  httpText,
  httpUp,
  type ProcessRole,
  REPO_ROOT,
  type RunAs,
  redisPing,
  renderRedisConf,
  SupervisedProcess,
  unprivilegedUser,
} from "../infra/runner";
import { deriveTopology, parseTopologyConfig, type Topology } from "../infra/topology";
import type { SystemName } from "./protocol";

export interface StackOptions {
  /** Sockets nginx must admit at once from 127.0.0.1 (streams, or idle sockets, plus room). */
  maxSockets: number;
  /** Extra Node flags for the relay (e.g. --cpu-prof: the relay then gets a graceful stop, to write its profile). */
  relayNodeArgs?: string[];
  log?: (line: string) => void;
}

export interface Stack {
  system: SystemName;
  dir: string;
  /** nginx's public entry. */
  entry: string;
  /** The relay itself, bypassing nginx (the capacity scenario: nginx needs two descriptors per socket). */
  relayUrl: string;
  /** chatgrid's gateway's metrics and health port (unused by the other relays). */
  relayMetricsUrl: string;
  redisUrl: string;
  redisPassword: string;
  /** The coordinator's own connection (INFO, CONFIG RESETSTAT, chatgrid's stream setup). */
  admin: Redis;
  pids: { relay: number; nginx: number; redis: number };
  /** The rendered nginx.conf, and its hash with ports and paths replaced (equal across systems). */
  nginxConf: string;
  nginxConfShape: string;
  stop(): Promise<void>;
}

/** The environment the gateway relaxes for the benchmark: every client comes from 127.0.0.1. */
export const BENCH_NODE_ENV: Record<string, string> = {
  LOG_LEVEL: "warn",
  SESSION_RATE_LIMIT: "100000000",
  SESSION_CREATE_RATE_LIMIT: "100000000",
  SESSION_CREATE_RATE_BURST: "100000000",
  WS_FRAMES_PER_SECOND: "1000",
};

/** Ports and temp paths replaced, so two renderings for different systems compare equal when nothing else differs. */
export function nginxConfShape(conf: string, dir: string): string {
  const normal = conf
    .split(dir)
    .join("<dir>")
    .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:<port>");
  return createHash("sha256").update(normal).digest("hex").slice(0, 16);
}

/** The topology nginx is rendered from: one "gateway" (the relay under test) at `relayPort`. */
function benchTopology(
  ports: { http: number; web: number; metrics: number; relay: number; relayMetrics: number; ai: number },
  redisUrl: string,
  maxSockets: number,
): Topology {
  const config = parseTopologyConfig({
    gatewayNodes: 1,
    aiNodes: 1,
    httpPort: ports.http,
    webPort: ports.web,
    metricsPort: ports.metrics,
    kafka: { enabled: false },
    // Every benchmark client comes from 127.0.0.1: the per-address socket limit is set out of the way, and the total
    // fits every socket (the same numbers for every system).
    wsConnectionsPerAddress: maxSockets,
    maxClientConnections: maxSockets,
    nodeEnv: BENCH_NODE_ENV,
  });
  return deriveTopology(config, {
    bindHost: "127.0.0.1",
    hostOf: () => "127.0.0.1",
    gatewayPort: () => ports.relay,
    gatewayMetricsPort: () => ports.relayMetrics,
    aiPort: () => ports.ai,
    redisUrl,
    allowedOrigins: [`http://127.0.0.1:${ports.http}`],
  });
}

const RELAY_SCRIPTS: Record<Exclude<SystemName, "chatgrid">, string> = {
  bare: join(REPO_ROOT, "bench", "bare-relay.ts"),
  socketio: join(REPO_ROOT, "bench", "socketio-server.ts"),
};

export async function startStack(system: SystemName, options: StackOptions): Promise<Stack> {
  ensureBinaries(["redis-server", "nginx"], options.log);
  const runAs: RunAs | undefined = unprivilegedUser();
  const dir = mkdtempSync(join(tmpdir(), `chatgrid-bench-${system}-`));
  // nobody (Redis, nginx's workers) traverses the dir, as in the runner's state dir.
  if (runAs) chmodSync(dir, statSync(dir).mode | 0o001);
  mkdirSync(join(dir, "logs"), { mode: 0o700 });
  const [redisPort, relayPort, relayMetricsPort, httpPort, webPort, metricsPort, aiPort] = await freePorts(7);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const redisPassword = randomBytes(24).toString("hex");
  const processes: SupervisedProcess[] = [];
  const killAll = () => {
    for (const p of processes) p.killNow();
  };
  process.once("exit", killAll);
  const supervise = (
    name: string,
    role: ProcessRole,
    command: string,
    args: string[],
    port: number,
    healthy: () => Promise<boolean>,
    env?: Record<string, string>,
    extra: { cwd?: string; uid?: number; gid?: number } = {},
  ) => {
    const p = new SupervisedProcess(
      {
        name,
        role,
        command,
        args,
        env,
        cwd: extra.cwd ?? REPO_ROOT,
        port,
        url: `http://127.0.0.1:${port}`,
        healthy,
        logFile: join(dir, "logs", `${name}.log`),
        startTimeoutMs: 30_000,
        uid: extra.uid,
        gid: extra.gid,
      },
      { enabled: false, initialDelayMs: 0, maxDelayMs: 0, resetAfterMs: 0 },
    );
    processes.push(p);
    return p;
  };
  let admin: Redis | undefined;
  const stop = async () => {
    admin?.disconnect();
    // nginx first (no new traffic), then the relay, then Redis; nothing here needs a graceful end.
    const grace = options.relayNodeArgs?.length ? 15_000 : 3000;
    for (const p of [...processes].reverse()) await p.stop(grace);
    process.removeListener("exit", killAll);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Redis, as the runner writes its redis.conf (infra/runner/redis-conf.ts): AOF on, no RDB, a password.
    const redisDir = join(dir, "redis");
    mkdirSync(redisDir, { mode: 0o700 });
    const confFile = join(redisDir, "redis.conf");
    writeFileSync(
      confFile,
      renderRedisConf({ port: redisPort!, dir: redisDir, password: redisPassword, maxmemory: DEFAULT_REDIS_MAXMEMORY }),
      { mode: 0o600 },
    );
    if (runAs) chownTree(redisDir, runAs.uid, runAs.gid);
    const redis = supervise(
      "redis",
      "redis",
      binaryPath("redis-server"),
      [confFile],
      redisPort!,
      () => redisPing("127.0.0.1", redisPort!, redisPassword),
      undefined,
      { cwd: redisDir, uid: runAs?.uid, gid: runAs?.gid },
    );
    await redis.start();
    admin = new Redis(redisUrl, { password: redisPassword, connectionName: "bench-coordinator" });
    await admin.ping();

    const topology = benchTopology(
      {
        http: httpPort!,
        web: webPort!,
        metrics: metricsPort!,
        relay: relayPort!,
        relayMetrics: relayMetricsPort!,
        ai: aiPort!,
      },
      redisUrl,
      options.maxSockets,
    );
    const nodeArgs = options.relayNodeArgs ?? [];
    const relay =
      system === "chatgrid"
        ? supervise(
            "gateway-1",
            "gateway",
            process.execPath,
            [...nodeArgs, "--import", "tsx", join(REPO_ROOT, "apps", "gateway", "src", "main.ts")],
            relayPort!,
            // Liveness: the gateway's readiness (/health) wants a healthy AI node, and here the publisher plays it.
            () => httpUp(`http://127.0.0.1:${relayMetricsPort}/live`, true),
            {
              ...topology.gateways[0]!.env,
              REDIS_PASSWORD: redisPassword,
              CLUSTER_SECRET: randomBytes(32).toString("hex"),
            },
          )
        : supervise(
            system,
            "gateway",
            process.execPath,
            [...nodeArgs, "--import", "tsx", RELAY_SCRIPTS[system]],
            relayPort!,
            () => httpUp(`http://127.0.0.1:${relayPort}/live`, true),
            { PORT: String(relayPort), REDIS_URL: redisUrl, REDIS_PASSWORD: redisPassword },
          );
    await relay.start();

    // nginx: the runner's rendering options (ClusterRunner.renderNginx), with the relay as gateway-1.
    const nginxDir = join(dir, "nginx");
    mkdirSync(nginxDir, { recursive: true });
    const nginxConf = renderNginxConf(topology, {
      runtimeDir: nginxDir,
      errorLog: join(dir, "logs", "nginx-error.log"),
      accessLog: "off",
      listenHost: "127.0.0.1",
      user: runAs ? `${runAs.user} ${runAs.group}` : undefined,
    });
    const nginxConfFile = join(nginxDir, "nginx.conf");
    writeFileSync(nginxConfFile, nginxConf);
    if (runAs) {
      chmodSync(nginxDir, 0o755);
      for (const temp of NGINX_TEMP_DIRS) {
        mkdirSync(join(nginxDir, temp), { recursive: true, mode: 0o700 });
        chownTree(join(nginxDir, temp), runAs.uid, runAs.gid);
      }
    }
    const entry = `http://127.0.0.1:${httpPort}`;
    const nginx = supervise(
      "nginx",
      "nginx",
      binaryPath("nginx"),
      ["-c", nginxConfFile, "-p", nginxDir, "-e", join(dir, "logs", "nginx-error.log"), "-g", "daemon off;"],
      httpPort!,
      async () => (await httpText(`${entry}/healthz`)) === "ok\n",
    );
    await nginx.start();
    return {
      system,
      dir,
      entry,
      relayUrl: `http://127.0.0.1:${relayPort}`,
      relayMetricsUrl: `http://127.0.0.1:${relayMetricsPort}`,
      redisUrl,
      redisPassword,
      admin,
      pids: { relay: relay.pid!, nginx: nginx.pid!, redis: redis.pid! },
      nginxConf,
      nginxConfShape: nginxConfShape(nginxConf, dir),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
