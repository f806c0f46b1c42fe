/**
 * `npm start [-- flags]`: the whole chatgrid topology as processes on this machine, supervised until Ctrl-C.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ClusterRunner, kafkaAvailable, REPO_ROOT, SECRET_FILES } from "../infra/runner";

const HELP = `Usage: npm start -- [options]

  --gateways N        gateway nodes (default 3)
  --ai-nodes M        AI nodes (default 3)
  --port P            public HTTP/WebSocket port, nginx (default 8080)
  --web-port W        web client port (default 3000)
  --metrics-port X    nginx stub_status port (default 8090)
  --state-dir DIR     logs, Redis data, nginx files, cluster.json (default .chatgrid)
  --demo-tps T        demo model tokens per second (default 20)
  --demo-tokens K     demo model tokens per answer (default 60)
  --redis-url URL     use this Redis instead of starting one (its password: the environment's REDIS_PASSWORD)
  --redis-maxmemory M the started Redis's memory bound, e.g. 512mb or 2gb (default 256mb); expiring keys are
                      evicted first (volatile-lru)
  --no-kafka          do not start Kafka (events off); Kafka needs Java, and Maven once to fetch it
  -h, --help          this text

With OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL in the environment, AI nodes use that provider instead of the
built-in demo model.`;

function int(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} expects a whole number, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gateways: { type: "string" },
      "ai-nodes": { type: "string" },
      port: { type: "string" },
      "web-port": { type: "string" },
      "metrics-port": { type: "string" },
      "state-dir": { type: "string" },
      "demo-tps": { type: "string" },
      "demo-tokens": { type: "string" },
      "redis-url": { type: "string" },
      "redis-maxmemory": { type: "string" },
      "no-kafka": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const openai = process.env.OPENAI_BASE_URL || process.env.OPENAI_API_KEY;
  const stateDir = values["state-dir"] ?? ".chatgrid";
  console.log("chatgrid: starting…");
  // The built web client, served by nginx on the web port (and at / on the main port).
  const webRoot = join(REPO_ROOT, "apps", "web", "dist");
  if (!existsSync(join(webRoot, "index.html"))) {
    console.log("chatgrid: building the web client (once; npm run build rebuilds everything)…");
    const build = spawnSync("npm", ["run", "build", "--workspace", "@chatgrid/web"], {
      cwd: REPO_ROOT,
      stdio: "inherit",
    });
    if (build.status !== 0) console.log("chatgrid: the web client did not build; the API and WebSocket still run");
  }
  const webBuilt = existsSync(join(webRoot, "index.html"));
  // Kafka when Java is here (the jars are fetched with Maven once); otherwise events are off and we say how.
  const kafkaCheck = values["no-kafka"] ? { ok: false as const, why: "--no-kafka" } : kafkaAvailable(REPO_ROOT);
  if (!kafkaCheck.ok) console.log(`chatgrid: Kafka off (${kafkaCheck.why}); events are disabled`);
  const runner = await ClusterRunner.start({
    kafka: kafkaCheck.ok,
    stateDir,
    webRoot: webBuilt ? webRoot : undefined,
    redisUrl: values["redis-url"],
    redisMaxMemory: values["redis-maxmemory"],
    log: (line) => console.log(`chatgrid: ${line}`),
    topology: {
      gatewayNodes: int(values.gateways, "gateways", 3),
      aiNodes: int(values["ai-nodes"], "ai-nodes", 3),
      httpPort: int(values.port, "port", 8080),
      webPort: int(values["web-port"], "web-port", 3000),
      metricsPort: int(values["metrics-port"], "metrics-port", 8090),
      provider: {
        kind: openai ? "openai" : "demo",
        demoTokensPerSecond: int(values["demo-tps"], "demo-tps", 20),
        demoMaxTokens: int(values["demo-tokens"], "demo-tokens", 60),
        openaiBaseUrl: process.env.OPENAI_BASE_URL,
        openaiModel: process.env.OPENAI_MODEL,
      },
    },
  });
  console.log(banner(runner, stateDir, Boolean(openai)));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log("\nchatgrid: stopping…");
    runner.stop().then(
      () => {
        console.log("chatgrid: stopped");
        process.exit(0);
      },
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

/** What `npm start` prints once everything is up: URLs, where the secrets are (never the secrets), the table. */
export function banner(runner: ClusterRunner, stateDir: string, openai: boolean): string {
  const info = runner.info();
  return `
chatgrid is up (${runner.topology.gateways.length} gateways, ${runner.topology.aiNodes.length} AI nodes, ${openai ? "openai provider" : "demo model"})

  chat API + WebSocket  ${info.urls.chat}   (POST /api/sessions, /api/chat, WS /ws/chat)
  web client            ${info.urls.web}
  nginx stub_status     ${info.urls.metrics}
  redis                 ${info.redisUrl}   (${redisAuth(runner.options.redisUrl, runner.redisPassword, info.secretsDir)})
  cluster secret        ${join(info.secretsDir, SECRET_FILES.clusterSecret)}
  kafka                 ${info.kafkaBrokers ?? "off"}   (npm run events tails the events)
  state, logs           ${stateDir}/ (cluster.json, logs/)

${table(info.processes)}

npm run ps shows this table again; Ctrl-C stops everything.`;
}

/** Where the Redis password is, never the password. */
function redisAuth(externalUrl: string | undefined, password: string | undefined, secrets: string): string {
  if (!externalUrl) return `password in ${join(secrets, SECRET_FILES.redisPassword)}`;
  return password ? "password given (REDIS_PASSWORD)" : "no password given (REDIS_PASSWORD)";
}

export function table(
  rows: { name: string; role: string; pid?: number; port: number; url: string; state: string; restarts: number }[],
): string {
  const header = ["name", "role", "pid", "port", "state", "restarts", "url"];
  const lines = rows.map((r) => [
    r.name,
    r.role,
    String(r.pid ?? "-"),
    String(r.port),
    r.state,
    String(r.restarts),
    r.url,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")}`.trimEnd();
  return [fmt(header), ...lines.map(fmt)].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    console.error(`chatgrid: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
