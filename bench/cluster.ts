/**
 * The whole topology for the scenarios (docs/benchmarks.md, "Scenarios"): the process runner of `npm start`
 * (infra/runner's ClusterRunner) in a temporary state dir on free ports: Redis from the runner's redis.conf, M AI
 * nodes with the demo model, N gateways, nginx from the one renderer in front. No Kafka, and no restarts (a killed
 * gateway stays down, so the scenario decides what runs); the gateways get the benchmark's environment
 * (bench/stack.ts BENCH_NODE_ENV), as the comparison's gateway does.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ClusterRunner, type SupervisedProcess } from "../infra/runner";
import { BenchChild } from "./ipc";
import { BENCH_NODE_ENV, nginxConfShape } from "./stack";

export interface ScenarioClusterOptions {
  gateways: number;
  aiNodes: number;
  demoTokensPerSecond: number;
  demoMaxTokens: number;
  /** Sockets nginx must admit at once. */
  maxSockets: number;
  /** NODE_OPTIONS for every gateway and AI node (a diagnosis's --cpu-prof), none by default. */
  nodeOptions?: string;
  log?: (line: string) => void;
}

export interface ScenarioCluster {
  runner: ClusterRunner;
  /** nginx's public entry. */
  entry: string;
  /** The coordinator's own connection (INFO, reading stored answers). */
  admin: Redis;
  gateway(name: string): SupervisedProcess;
  pids: { gateways: number[]; ai: number[]; nginx: number; redis: number };
  /** The rendered nginx.conf's hash with ports and paths replaced (bench/stack.ts nginxConfShape). */
  nginxConfShape: string;
  stop(): Promise<void>;
}

/** Start attempts: free ports are picked, then bound by each process, and other work on the machine can take one. */
const START_ATTEMPTS = 3;

export async function startScenarioCluster(options: ScenarioClusterOptions): Promise<ScenarioCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= START_ATTEMPTS || !/EADDRINUSE|address already in use/i.test(message)) throw error;
      options.log?.(`cluster start failed on a port taken meanwhile (attempt ${attempt}); starting again on new ports`);
    }
  }
}

async function startOnce(options: ScenarioClusterOptions): Promise<ScenarioCluster> {
  const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-bench-scenario-"));
  let runner: ClusterRunner | undefined;
  let admin: Redis | undefined;
  const stop = async () => {
    admin?.disconnect();
    await runner?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    runner = await ClusterRunner.start({
      stateDir,
      nginx: true,
      restart: false,
      publicPortsMayBeFree: true,
      log: options.log,
      ...(options.nodeOptions
        ? { gatewayEnv: { NODE_OPTIONS: options.nodeOptions }, aiEnv: { NODE_OPTIONS: options.nodeOptions } }
        : {}),
      topology: {
        gatewayNodes: options.gateways,
        aiNodes: options.aiNodes,
        provider: {
          kind: "demo",
          demoTokensPerSecond: options.demoTokensPerSecond,
          demoMaxTokens: options.demoMaxTokens,
        },
        maxClientConnections: Math.max(10_000, options.maxSockets),
        nodeEnv: BENCH_NODE_ENV,
      },
    });
    admin = new Redis(runner.redisUrl, { ...runner.redisOptions, connectionName: "bench-coordinator" });
    await admin.ping();
    const started = runner;
    const pidOf = (name: string) => started.node(name).pid ?? 0;
    const conf = readFileSync(join(stateDir, "nginx", "nginx.conf"), "utf8");
    return {
      runner,
      entry: runner.urls.chat,
      admin,
      gateway: (name) => started.node(name),
      pids: {
        gateways: runner.topology.gateways.map((g) => pidOf(g.name)),
        ai: runner.topology.aiNodes.map((n) => pidOf(n.name)),
        nginx: pidOf("nginx"),
        redis: pidOf("redis"),
      },
      nginxConfShape: nginxConfShape(conf, stateDir),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Source addresses for `count` clients over `subnets` /24s: client i is 127.0.(first + i mod subnets).(1 + i div
 * subnets). nginx's ip_hash keys on the first three octets, so the subnet picks the gateway; its per-address limits
 * key on the whole address, so each client has its own, as users behind distinct addresses do.
 */
export function clientAddresses(count: number, subnets: number, first = 10): string[] {
  if (subnets < 1 || first + subnets > 255 || Math.ceil(count / subnets) > 254)
    throw new Error(`${count} clients do not fit ${subnets} subnets from 127.0.${first}.0`);
  return Array.from({ length: count }, (_, i) => `127.0.${first + (i % subnets)}.${1 + Math.floor(i / subnets)}`);
}

/** INFO commandstats as calls per command (the coordinator's own INFO left out). */
export async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const line of info.split("\r\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match && match[1] !== "info") calls[match[1]!] = Number(match[2]);
  }
  return calls;
}

/** A scenario's results: its options (without the logger), its target, and one entry per run. */
export interface ScenarioRuns<O, R> {
  options: Omit<O, "log">;
  targetMs: number;
  runs: R[];
  durationSeconds: number;
  /** The rendered nginx.conf's shape (equal to the comparison's when nothing but ports and paths differ). */
  nginxConfShape: string;
}

/** Runs a scenario's repeats one after another, each on a cluster of its own. */
export async function repeatScenario<O extends { repeats: number; log: unknown }, R>(
  options: O,
  targetMs: number,
  runOnce: (options: O, repeat: number) => Promise<{ run: R; shape: string }>,
): Promise<ScenarioRuns<O, R>> {
  const started = Date.now();
  const runs: R[] = [];
  let shape = "";
  for (let repeat = 1; repeat <= options.repeats; repeat++) {
    const { run, shape: s } = await runOnce(options, repeat);
    runs.push(run);
    shape = s;
  }
  const { log: _log, ...rest } = options;
  return {
    options: rest,
    targetMs,
    runs,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    nginxConfShape: shape,
  };
}

/** A scenario's run: its client processes and its cluster, both stopped whatever the run does. */
export async function withScenarioCluster<T>(
  name: string,
  clientProcesses: number,
  clusterOptions: ScenarioClusterOptions,
  run: (cluster: ScenarioCluster, clients: BenchChild[]) => Promise<T>,
): Promise<T> {
  const clients = Array.from({ length: clientProcesses }, (_, k) =>
    BenchChild.start(`${name}-clients-${k + 1}`, "chat-clients.ts"),
  );
  let cluster: ScenarioCluster | undefined;
  try {
    cluster = await startScenarioCluster(clusterOptions);
    return await run(cluster, clients);
  } finally {
    for (const c of clients) c.kill();
    await cluster?.stop();
  }
}
