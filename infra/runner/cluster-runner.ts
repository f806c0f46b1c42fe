import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { maxClientConnectionsWithin, NGINX_TEMP_DIRS, renderNginxConf } from "../nginx/render";
import {
  deriveTopology,
  parseTopologyConfig,
  type Topology,
  type TopologyConfig,
  type TopologyConfigInput,
} from "../topology";
import { binaryPath, ensureBinaries } from "./binaries";
import { httpText, httpUp, redisPing } from "./health";
import { ensureKafkaJars, kafkaReady, prepareKafkaBroker } from "./kafka";
import { freePort, freePorts, isPortFree } from "./ports";
import { DEFAULT_REDIS_MAXMEMORY, renderRedisConf, requireRedisMemory } from "./redis-conf";
import { ensureSecret, SECRET_FILES, secretsDir } from "./secrets";
import { defaultRestartPolicy, type ProcessRole, type ProcessSpec, SupervisedProcess } from "./supervised-process";
import {
  canAccess,
  chownTree,
  firstUntraversable,
  type RunAs,
  UNPRIVILEGED_USER,
  unprivilegedUser,
} from "./unprivileged";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ClusterOptions {
  topology?: TopologyConfigInput;
  /** Where logs, Redis data, nginx's files and cluster.json go. */
  stateDir: string;
  /** Use this Redis instead of starting one. */
  redisUrl?: string;
  /** The password of that Redis (`redisUrl`); default: the environment's REDIS_PASSWORD. */
  redisPassword?: string;
  /** The started Redis's `maxmemory` (expiring keys are evicted first, `volatile-lru`); default 256mb. */
  redisMaxMemory?: string;
  /** Who runs redis-server and nginx's workers when the runner runs as root; default `nobody`. */
  unprivilegedUser?: string;
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
  /** Without credentials: the password is in `secretsDir` (or the environment), never here. */
  redisUrl: string;
  /** Where the generated Redis password and cluster secret are (files 0600). */
  secretsDir: string;
  kafkaBrokers?: string;
  processes: ClusterProcessInfo[];
}

/** The credentials of a cluster: given to every node in its process environment, never on a command line. */
export interface ClusterSecrets {
  /** Redis's password (`requirepass`): generated per state dir, or the external Redis's. */
  redisPassword?: string;
  /** CLUSTER_SECRET, shared by every node: generated per state dir. */
  clusterSecret: string;
}

/** A URL without its user and password, for people and files. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = "";
    parsed.password = parsed.password ? "***" : "";
    return parsed.toString().replace(/\/$/, url.endsWith("/") ? "/" : "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
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
    private readonly secrets: ClusterSecrets,
    /** The user redis-server and nginx's workers run as (the runner runs as root), or undefined. */
    readonly runAs: RunAs | undefined,
    private readonly kafkaPorts?: { broker: number; controller: number },
  ) {}

  /** The password of this cluster's Redis: give it to every client (`new Redis(url, runner.redisOptions)`). */
  get redisPassword(): string | undefined {
    return this.secrets.redisPassword;
  }

  /** The options a Redis client needs for this cluster (ioredis: `new Redis(runner.redisUrl, runner.redisOptions)`). */
  get redisOptions(): { password?: string } {
    return this.secrets.redisPassword === undefined ? {} : { password: this.secrets.redisPassword };
  }

  /** The CLUSTER_SECRET every node of this cluster shares. */
  get clusterSecret(): string {
    return this.secrets.clusterSecret;
  }

  /** The environment every gateway and AI node gets on top of its topology environment. */
  private get secretEnv(): Record<string, string> {
    return {
      ...(this.secrets.redisPassword === undefined ? {} : { REDIS_PASSWORD: this.secrets.redisPassword }),
      CLUSTER_SECRET: this.secrets.clusterSecret,
    };
  }

  /** Kafka's bootstrap address when this cluster runs a broker. */
  get kafkaBrokers(): string | undefined {
    return this.kafkaPorts ? `127.0.0.1:${this.kafkaPorts.broker}` : undefined;
  }

  static async start(options: ClusterOptions): Promise<ClusterRunner> {
    const log = options.log ?? (() => undefined);
    const config = fitOpenFiles(parseTopologyConfig(options.topology ?? {}), log);
    const useNginx = options.nginx ?? true;
    const maxmemory = options.redisMaxMemory ?? DEFAULT_REDIS_MAXMEMORY;
    requireRedisMemory("redisMaxMemory", maxmemory);
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
    mkdirSync(stateDir, { recursive: true });
    for (const dir of ["redis", "nginx"]) mkdirSync(join(stateDir, dir), { recursive: true });
    // The runner alone writes the logs (each child gets an open descriptor).
    mkdirSync(join(stateDir, "logs"), { recursive: true, mode: 0o700 });
    chmodSync(join(stateDir, "logs"), 0o700);
    const { runAs, webRoot } = ClusterRunner.prepareUnprivileged(stateDir, options, useNginx);
    const secrets: ClusterSecrets = {
      redisPassword: options.redisUrl
        ? (options.redisPassword ?? (process.env.REDIS_PASSWORD || undefined))
        : ensureSecret(stateDir, SECRET_FILES.redisPassword),
      clusterSecret: ensureSecret(stateDir, SECRET_FILES.clusterSecret),
    };

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
    const runner = new ClusterRunner(
      { ...options, stateDir, redisMaxMemory: maxmemory, webRoot },
      topology,
      ports,
      redisUrl,
      secrets,
      runAs,
      kafkaPorts,
    );
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
    extra: Pick<ProcessSpec, "cwd" | "uid" | "gid"> = {},
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
      ...extra,
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
      const password = this.secrets.redisPassword!;
      const dir = join(stateDir, "redis");
      const confFile = join(dir, "redis.conf");
      // The password is in this file (0600, owned by whoever runs Redis); the command line has only its path.
      rmSync(confFile, { force: true });
      writeFileSync(
        confFile,
        renderRedisConf({ port: redisPort, dir, password, maxmemory: this.options.redisMaxMemory! }),
        { mode: 0o600 },
      );
      if (this.runAs) chownTree(dir, this.runAs.uid, this.runAs.gid);
      chmodSync(dir, 0o700);
      const redis = this.spec(
        "redis",
        "redis",
        binaryPath("redis-server"),
        [confFile],
        redisPort,
        this.redisUrl,
        () => redisPing("127.0.0.1", redisPort, password),
        undefined,
        { cwd: dir, uid: this.runAs?.uid, gid: this.runAs?.gid },
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
          // The secrets go in the process environment only (NodeSpec.env is what other targets render).
          { ...node.env, ...this.secretEnv, ...this.options.aiEnv },
        ).start(),
      ),
    );
    await Promise.all(
      this.topology.gateways.map((node) => {
        const env = { ...node.env, ...this.secretEnv, ...this.options.gatewayEnv };
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
      if (this.runAs) {
        // Workers (the unprivileged user) write request bodies and proxied responses here (whatever the umask).
        chmodSync(nginxDir, 0o755);
        for (const temp of NGINX_TEMP_DIRS) {
          const dir = join(nginxDir, temp);
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          chownTree(dir, this.runAs.uid, this.runAs.gid);
        }
      }
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
      // A root master runs its workers as the unprivileged user (the temp dirs are theirs).
      user: this.runAs ? `${this.runAs.user} ${this.runAs.group}` : undefined,
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
      redisUrl: redactUrl(this.redisUrl),
      secretsDir: secretsDir(this.options.stateDir),
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

  /**
   * As root: the user redis-server and nginx's workers run as, once the state dir (and the web root) are reachable
   * by it. The state dir itself gets o+x (traverse, not list); what is secret in it stays 0700/0600. A web root that
   * user cannot read (a checkout under /root) is served from a copy in the state dir (the built client is small).
   */
  private static prepareUnprivileged(
    stateDir: string,
    options: ClusterOptions,
    useNginx: boolean,
  ): { runAs: RunAs | undefined; webRoot: string | undefined } {
    const runAs = unprivilegedUser(options.unprivilegedUser ?? UNPRIVILEGED_USER);
    const webRoot = options.webRoot;
    if (!runAs || (options.redisUrl && !useNginx)) return { runAs, webRoot };
    chmodSync(stateDir, statSync(stateDir).mode | 0o001);
    const blocked = firstUntraversable(runAs, stateDir);
    if (blocked) {
      throw new Error(
        `${blocked} is not traversable by ${runAs.user}, who runs redis-server and nginx's workers (the runner runs as root) in the state dir ${stateDir}: choose a state dir it can reach (e.g. --state-dir /tmp/chatgrid) or chmod o+x ${blocked}`,
      );
    }
    if (useNginx && webRoot) {
      const index = join(webRoot, "index.html");
      if (firstUntraversable(runAs, webRoot) || (existsSync(index) && !canAccess(runAs, "-r", index))) {
        const copy = join(stateDir, "web");
        rmSync(copy, { recursive: true, force: true });
        cpSync(webRoot, copy, { recursive: true });
        chownTree(copy, runAs.uid, runAs.gid);
        return { runAs, webRoot: copy };
      }
    }
    return { runAs, webRoot };
  }

  private killAll(): void {
    for (const p of this.processes.values()) p.killNow();
  }
}

/**
 * nginx cannot raise its file limit above this machine's hard limit (`ulimit -Hn`), and says so at every start:
 * the process target admits only as many client connections as that limit carries.
 */
function fitOpenFiles(config: TopologyConfig, log: (line: string) => void): TopologyConfig {
  const hard = Number(spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim());
  if (!Number.isInteger(hard) || hard <= 0) return config; // "unlimited", or no shell
  const fitted = maxClientConnectionsWithin(hard);
  if (config.maxClientConnections <= fitted) return config;
  log(`nginx admits ${fitted} client connections, not ${config.maxClientConnections}: the open-file limit is ${hard}`);
  return { ...config, maxClientConnections: fitted };
}

export { freePort };
