import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderNginxConf } from "../nginx/render";
import { deriveTopology, parseTopologyConfig, type Topology, type TopologyConfigInput } from "../topology";
import { binaryPath, ensureBinaries } from "./binaries";
import { httpText, httpUp, redisPing } from "./health";
import { ensureKafkaJars, kafkaReady, prepareKafkaBroker } from "./kafka";
import { freePort, freePorts, isPortFree } from "./ports";
import { defaultRestartPolicy, type ProcessRole, type ProcessSpec, SupervisedProcess } from "./supervised-process";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ClusterOptions {
  topology?: TopologyConfigInput;
  /** Where logs, Redis data, nginx's files and cluster.json go. */
  stateDir: string;
  /** Use this Redis instead of starting one. */
  redisUrl?: string;
  /** Start a Kafka broker (KRaft, on loopback) and give every node its address. */
  kafka?: boolean;
  /** Put nginx in front (the real entry). Off: clients talk to gateways directly. */
  nginx?: boolean;
  /** Restart nodes that die (the runner's supervision); tests of failure turn it off. */
  restart?: boolean;
  /** Public ports: 0 picks free ones (tests); a taken port is refused with a clear message. */
  publicPortsMayBeFree?: boolean;
  /** Extra environment for gateways / AI nodes only. */
  gatewayEnv?: Record<string, string>;
  aiEnv?: Record<string, string>;
  /** AI URLs added to each gateway's static list (e.g. an external node, or a closed port in tests). */
  extraAiUrls?: string[];
  /** The built web client to serve on the web port. */
  webRoot?: string;
  log?: (line: string) => void;
}

export interface ClusterProcessInfo {
  name: string;
  role: ProcessRole;
  pid: number | undefined;
  port: number;
  url: string;
  state: string;
  restarts: number;
  logFile: string;
}

export interface ClusterInfo {
  startedAt: string;
  runnerPid: number;
  stateDir: string;
  urls: { chat: string; api: string; web: string; metrics: string };
  redisUrl: string;
  kafkaBrokers?: string;
  processes: ClusterProcessInfo[];
}

/**
 * The whole topology as plain processes on loopback: Redis, M AI nodes, N gateways and nginx, supervised.
 * `npm start` runs it; the end-to-end tests use it as a library (start on free ports, kill a node, stop).
 */
export class ClusterRunner {
  readonly processes = new Map<string, SupervisedProcess>();
  private stopped = false;
  private readonly exitHandler = () => this.killAll();

  private constructor(
    readonly options: ClusterOptions,
    readonly topology: Topology,
    readonly ports: { http: number; web: number; metrics: number },
    readonly redisUrl: string,
    private readonly kafkaPorts?: { broker: number; controller: number },
  ) {}

  /** Kafka's bootstrap address when this cluster runs a broker. */
  get kafkaBrokers(): string | undefined {
    return this.kafkaPorts ? `127.0.0.1:${this.kafkaPorts.broker}` : undefined;
  }

  static async start(options: ClusterOptions): Promise<ClusterRunner> {
    const log = options.log ?? (() => undefined);
    const config = parseTopologyConfig(options.topology ?? {});
    const useNginx = options.nginx ?? true;
    ensureBinaries([...(options.redisUrl ? [] : ["redis-server"]), ...(useNginx ? ["nginx"] : [])], log);
    if (options.kafka) {
      ensureBinaries(["java"], log);
      ensureKafkaJars(REPO_ROOT, log);
    }

    const ports = {
      http: config.httpPort,
      web: config.webPort,
      metrics: config.metricsPort,
    };
    // One allocation for every port, so a public and an internal port can never be the same number.
    const internalCount = config.gatewayNodes * 2 + config.aiNodes + 1 + (options.kafka ? 2 : 0);
    const allocated = await freePorts(internalCount + (options.publicPortsMayBeFree ? 3 : 0));
    if (options.publicPortsMayBeFree) {
      const [http, web, metrics] = allocated.splice(internalCount, 3);
      Object.assign(ports, { http, web, metrics });
    } else if (useNginx) {
      for (const [what, port] of Object.entries(ports)) {
        if (!(await isPortFree(port))) {
          throw new Error(
            `port ${port} (${what}) is already in use: stop what uses it, or pass another port (see --help)`,
          );
        }
      }
    }
    const stateDir = resolve(options.stateDir);
    for (const dir of ["logs", "redis", "nginx"]) mkdirSync(join(stateDir, dir), { recursive: true });

    const internal = allocated;
    const redisPort = internal.pop()!;
    const kafkaPorts = options.kafka ? { broker: internal.pop()!, controller: internal.pop()! } : undefined;
    const redisUrl = options.redisUrl ?? `redis://127.0.0.1:${redisPort}`;
    const webOrigins = [
      `http://127.0.0.1:${ports.web}`,
      `http://localhost:${ports.web}`,
      `http://127.0.0.1:${ports.http}`,
      `http://localhost:${ports.http}`,
    ];
    const topology = deriveTopology(
      { ...config, httpPort: ports.http, webPort: ports.web, metricsPort: ports.metrics },
      {
        bindHost: "127.0.0.1",
        hostOf: () => "127.0.0.1",
        gatewayPort: (i) => internal[i]!,
        gatewayMetricsPort: (i) => internal[config.gatewayNodes + i]!,
        aiPort: (i) => internal[config.gatewayNodes * 2 + i]!,
        redisUrl,
        kafkaBrokers: kafkaPorts ? `127.0.0.1:${kafkaPorts.broker}` : undefined,
        allowedOrigins: webOrigins,
      },
    );
    const runner = new ClusterRunner({ ...options, stateDir }, topology, ports, redisUrl, kafkaPorts);
    process.once("exit", runner.exitHandler);
    try {
      await runner.launch(redisPort, useNginx);
    } catch (error) {
      await runner.stop();
      throw error;
    }
    return runner;
  }

  private spec(
    name: string,
    role: ProcessRole,
    command: string,
    args: string[],
    port: number,
    url: string,
    healthy: () => Promise<boolean>,
    env?: Record<string, string>,
  ): SupervisedProcess {
    const processSpec: ProcessSpec = {
      name,
      role,
      command,
      args,
      env,
      cwd: REPO_ROOT,
      port,
      url,
      healthy,
      logFile: join(this.options.stateDir, "logs", `${name}.log`),
    };
    const supervised = new SupervisedProcess(processSpec, {
      ...defaultRestartPolicy,
      enabled: this.options.restart ?? true,
    });
    supervised.on("healthy", () => this.writeClusterFile());
    supervised.on("exit", (code, signal) => {
      if (!this.stopped)
        this.options.log?.(
          `${name} exited (${signal ?? code}); ${supervised.policy.enabled ? "restarting" : "not restarting"}`,
        );
    });
    this.processes.set(name, supervised);
    return supervised;
  }

  private nodeCommand(role: "gateway" | "ai"): string[] {
    return ["--import", "tsx", join(REPO_ROOT, "apps", role, "src", "main.ts")];
  }

  private async launch(redisPort: number, useNginx: boolean): Promise<void> {
    const { stateDir } = this.options;
    if (!this.options.redisUrl) {
      const redis = this.spec(
        "redis",
        "redis",
        binaryPath("redis-server"),
        [
          "--port",
          String(redisPort),
          "--bind",
          "127.0.0.1",
          "--dir",
          join(stateDir, "redis"),
          "--appendonly",
          "yes",
          "--save",
          "",
          "--protected-mode",
          "no",
        ],
        redisPort,
        this.redisUrl,
        () => redisPing("127.0.0.1", redisPort),
      );
      await redis.start();
    }
    if (this.kafkaPorts) {
      const dir = join(stateDir, "kafka");
      const broker = `127.0.0.1:${this.kafkaPorts.broker}`;
      const files = prepareKafkaBroker(REPO_ROOT, dir, this.kafkaPorts.broker, this.kafkaPorts.controller);
      const kafka = this.spec(
        "kafka",
        "kafka",
        files.command,
        files.args,
        this.kafkaPorts.broker,
        `kafka://${broker}`,
        () => kafkaReady(broker),
      );
      kafka.spec.startTimeoutMs = 120_000;
      await kafka.start();
    }
    const extra = this.options.extraAiUrls ?? [];
    await Promise.all(
      this.topology.aiNodes.map((node) =>
        this.spec(
          node.name,
          "ai",
          process.execPath,
          this.nodeCommand("ai"),
          node.port,
          node.url,
          () => httpUp(`${node.url}/health`, true),
          {
            ...node.env,
            ...this.options.aiEnv,
          },
        ).start(),
      ),
    );
    await Promise.all(
      this.topology.gateways.map((node) => {
        const env = { ...node.env, ...this.options.gatewayEnv };
        if (extra.length > 0) env.AI_SERVICE_URLS = [env.AI_SERVICE_URLS, ...extra].filter(Boolean).join(",");
        return this.spec(
          node.name,
          "gateway",
          process.execPath,
          this.nodeCommand("gateway"),
          node.port,
          node.url,
          () => httpUp(`http://${node.host}:${node.metricsPort}/health`),
          env,
        ).start();
      }),
    );
    if (useNginx) {
      const nginxDir = join(stateDir, "nginx");
      const confFile = join(nginxDir, "nginx.conf");
      writeFileSync(confFile, this.renderNginx());
      const nginx = this.spec(
        "nginx",
        "nginx",
        binaryPath("nginx"),
        ["-c", confFile, "-p", nginxDir, "-e", join(stateDir, "logs", "nginx-error.log"), "-g", "daemon off;"],
        this.ports.http,
        this.urls.chat,
        // The body too: only nginx answers /healthz with exactly this.
        async () => (await httpText(`${this.urls.chat}/healthz`)) === "ok\n",
      );
      await nginx.start();
    }
    this.writeClusterFile();
  }

  /** The nginx.conf of this cluster: the one renderer every target uses. */
  renderNginx(): string {
    const { stateDir } = this.options;
    return renderNginxConf(this.topology, {
      runtimeDir: join(stateDir, "nginx"),
      errorLog: join(stateDir, "logs", "nginx-error.log"),
      accessLog: "off",
      listenHost: "127.0.0.1",
      webRoot: this.options.webRoot,
      // A root master would run workers as nobody, who cannot write into the state dir.
      user: process.getuid?.() === 0 ? "root" : undefined,
    });
  }

  get urls(): ClusterInfo["urls"] {
    return {
      chat: `http://127.0.0.1:${this.ports.http}`,
      api: `http://127.0.0.1:${this.ports.http}/api`,
      web: `http://127.0.0.1:${this.ports.web}`,
      metrics: `http://127.0.0.1:${this.ports.metrics}`,
    };
  }

  node(name: string): SupervisedProcess {
    const found = this.processes.get(name);
    if (!found) throw new Error(`no process named ${name} (have: ${[...this.processes.keys()].join(", ")})`);
    return found;
  }

  /** Direct URL of a gateway (bypassing nginx). */
  gatewayUrl(index: number): string {
    return this.topology.gateways[index]!.url;
  }

  info(): ClusterInfo {
    return {
      startedAt: new Date().toISOString(),
      runnerPid: process.pid,
      stateDir: this.options.stateDir,
      urls: this.urls,
      redisUrl: this.redisUrl,
      kafkaBrokers: this.kafkaBrokers,
      processes: [...this.processes.values()].map((p) => ({
        name: p.name,
        role: p.spec.role,
        pid: p.pid,
        port: p.spec.port,
        url: p.spec.url,
        state: p.state,
        restarts: p.restarts,
        logFile: p.spec.logFile,
      })),
    };
  }

  private writeClusterFile(): void {
    if (this.stopped) return;
    writeFileSync(join(this.options.stateDir, "cluster.json"), `${JSON.stringify(this.info(), null, 2)}\n`);
  }

  /** Stops everything: nginx first (no new traffic), then gateways (1012 to clients), AI nodes, Redis. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const byRole = (role: ProcessRole) => [...this.processes.values()].filter((p) => p.spec.role === role);
    for (const role of ["nginx", "gateway", "ai", "kafka", "redis"] as const) {
      await Promise.all(byRole(role).map((p) => p.stop(role === "ai" || role === "gateway" ? 5000 : 10_000)));
    }
    process.removeListener("exit", this.exitHandler);
    rmSync(join(this.options.stateDir, "cluster.json"), { force: true });
  }

  private killAll(): void {
    for (const p of this.processes.values()) p.killNow();
  }
}

export { freePort };
