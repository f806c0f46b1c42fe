import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join, posix, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../packages/broker/src/test-redis";
import { waitFor } from "../test/support/wait";
import { ensureWebBuilt } from "../test/support/web";
import { appHealthCheck, appLivenessCheck, images, PINNED_IMAGE } from "./images";
import { renderNginxConf } from "./nginx/render";
import { binaryPath } from "./runner/binaries";
import { freePorts } from "./runner/ports";
import { deriveTopology, parseTopologyConfig } from "./topology";

/**
 * What each image needs, checked without a Docker engine: the Dockerfiles are parsed; the build stage's command is
 * run here (it is the same `npm run build --workspace …`); every file the runtime stage copies must then exist; and
 * the runtime stage's start command is run on a copy of what it copies (the image's /app), against a real Redis,
 * until the app's health endpoint answers and the image's own HEALTHCHECK command passes; then the liveness command
 * (what ECS restarts on) passes too, and keeps passing when Redis goes away while the readiness commands fail.
 */

const REPO = join(import.meta.dirname, "..");
const APPS = ["gateway", "ai", "web"] as const;
type App = (typeof APPS)[number];

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  /** `--platform=` of the FROM line, when it has one. */
  platform?: string;
  instructions: Instruction[];
}
interface Dockerfile {
  /** ARG lines before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Dockerfile instructions with continuations joined and comments dropped. */
function parseDockerfile(text: string): Dockerfile {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const result: Dockerfile = { globalArgs: {}, stages: [] };
  for (const line of lines) {
    const [, keyword = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === "FROM") {
      const [, platform, from = "", name] = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      result.stages.push({ from, name, platform, instructions: [] });
    } else if (result.stages.length === 0) {
      expect(upper, `only ARG may come before FROM: ${line}`).toBe("ARG");
      const [name = "", value = ""] = args.split("=", 2);
      result.globalArgs[name] = value;
    } else {
      result.stages.at(-1)!.instructions.push({ keyword: upper, args });
    }
  }
  return result;
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function parseCopy(args: string): Copy {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
}
const copiesOf = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "COPY").map((i) => parseCopy(i.args));
const last = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword).at(-1);
/** Exec form only (`["a", "b"]`): what Docker runs without a shell. */
const execForm = (args: string): string[] => {
  const parsed = JSON.parse(args) as unknown;
  expect(Array.isArray(parsed), `not exec form: ${args}`).toBe(true);
  return parsed as string[];
};

const dockerfiles = Object.fromEntries(
  APPS.map((app) => [app, parseDockerfile(readFileSync(join(REPO, "apps", app, "Dockerfile"), "utf8"))]),
) as Record<App, Dockerfile>;

/** Every workspace directory, from the root package.json's globs. */
function workspaceDirs(): string[] {
  const globs = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { workspaces: string[] }).workspaces;
  return globs.flatMap((glob) =>
    glob.endsWith("/*")
      ? readdirSync(join(REPO, glob.slice(0, -2)))
          .map((name) => `${glob.slice(0, -2)}/${name}`)
          .filter((dir) => existsSync(join(REPO, dir, "package.json")))
      : [glob],
  );
}

/** .dockerignore semantics (the subset used here): `**`, `*`, `!` exceptions, the last matching line decides. */
function dockerIgnored(path: string): boolean {
  const rules = readFileSync(join(REPO, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((line) => {
      const negate = line.startsWith("!");
      const pattern = (negate ? line.slice(1) : line).replace(/\/$/, "");
      const regex = pattern
        .split("/")
        .map((part) => (part === "**" ? "(?:.*)" : part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")))
        .join("/")
        .replace(/\(\?:\.\*\)\//g, "(?:.*/)?");
      return { negate, regex: new RegExp(`^${regex}$`) };
    });
  const parts = path.replace(/\/$/, "").split("/");
  let ignored = false;
  // A path is excluded when it or one of its parent directories matches.
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    for (const rule of rules) if (rule.regex.test(prefix)) ignored = !rule.negate;
  }
  return ignored;
}

describe("the Dockerfiles", () => {
  it.each(APPS)("%s: multi-stage; base images are ARGs whose defaults are infra/images.ts's pins", (app) => {
    const file = dockerfiles[app];
    expect(file.stages.length).toBeGreaterThanOrEqual(2);
    const expectedArgs: Record<string, string> =
      app === "web" ? { NODE_IMAGE: images.node, NGINX_IMAGE: images.nginx } : { NODE_IMAGE: images.node };
    expect(file.globalArgs).toEqual(expectedArgs);
    for (const value of Object.values(file.globalArgs)) expect(value).toMatch(PINNED_IMAGE);
    const stageNames = file.stages.map((s) => s.name).filter(Boolean);
    for (const stage of file.stages) {
      const base = /^\$\{(\w+)\}$/.exec(stage.from)?.[1];
      expect(base ? base in file.globalArgs : stageNames.includes(stage.from), `FROM ${stage.from}`).toBe(true);
    }
    const runtime = file.stages.at(-1)!;
    const runtimeBase = app === "web" ? "NGINX_IMAGE" : "NODE_IMAGE";
    expect(runtime.from).toBe(`\${${runtimeBase}}`);
    // The JS stages on the builder's platform (no emulation for a foreign target), the runtime on the target's.
    expect(file.stages[0]!.platform).toBe("$BUILDPLATFORM");
    expect(runtime.platform).toBeUndefined();
  });

  it.each(APPS)("%s: the runtime stage runs as a non-root user, has a HEALTHCHECK and a start command", (app) => {
    const runtime = dockerfiles[app].stages.at(-1)!;
    const user = last(runtime, "USER")?.args;
    expect(user).toBe(app === "web" ? "nginx" : "node");
    expect(last(runtime, "HEALTHCHECK")?.args).toMatch(/--interval=\d+s .*CMD \[/);
    expect(last(runtime, "CMD") ?? last(runtime, "ENTRYPOINT")).toBeDefined();
    // The runtime stage copies only from the build stage: no sources, no dev dependencies, no lock file.
    for (const copy of copiesOf(runtime)) expect(copy.from).toBe("build");
  });

  it.each(["gateway", "ai"] as const)(
    "%s: the image's HEALTHCHECK is the one the stack gives its containers",
    (app) => {
      const runtime = dockerfiles[app].stages.at(-1)!;
      const check = last(runtime, "HEALTHCHECK")!.args;
      expect(execForm(check.slice(check.indexOf("CMD ") + 4))).toEqual(appHealthCheck[app]);
    },
  );

  it.each(["gateway", "ai"] as const)(
    "%s: the liveness command is the readiness command with /live for /health, nothing else",
    (app) => {
      const ready: readonly string[] = appHealthCheck[app];
      const live: readonly string[] = appLivenessCheck[app];
      expect(live).toHaveLength(ready.length);
      const differing = live.flatMap((arg, i) => (arg === ready[i] ? [] : [i]));
      expect(differing).toEqual([ready.length - 1]);
      const [readyScript, liveScript] = [ready.at(-1)!, live.at(-1)!];
      // The path occurs once in each; swapping it is the whole difference.
      expect(readyScript.split("'/health'")).toHaveLength(2);
      expect(liveScript.split("'/live'")).toHaveLength(2);
      expect(liveScript).toBe(readyScript.replace("'/health'", "'/live'"));
      expect(liveScript).not.toMatch(/health/);
    },
  );

  it.each(APPS)(
    "%s: npm ci sees the lock file and every workspace's package.json (a new workspace needs a line)",
    (app) => {
      const deps = dockerfiles[app].stages[0]!;
      const copied = copiesOf(deps).flatMap((c) => c.sources);
      expect(copied).toEqual(
        expect.arrayContaining([
          "package.json",
          "package-lock.json",
          ...workspaceDirs().map((dir) => posix.join(dir, "package.json")),
        ]),
      );
      expect(copied).toHaveLength(2 + workspaceDirs().length);
      expect(deps.instructions.find((i) => i.keyword === "RUN")?.args).toMatch(/^npm ci\b/);
    },
  );

  it("the three Dockerfiles share the dependency stage byte for byte (one cached layer for all images)", () => {
    const depsOf = (app: App) => JSON.stringify(dockerfiles[app].stages[0]);
    expect(depsOf("ai")).toBe(depsOf("gateway"));
    expect(depsOf("web")).toBe(depsOf("gateway"));
  });

  it.each(APPS)("%s: every file copied from the build context exists and is not excluded by .dockerignore", (app) => {
    for (const stage of dockerfiles[app].stages) {
      for (const copy of copiesOf(stage).filter((c) => !c.from)) {
        for (const source of copy.sources) {
          expect(existsSync(join(REPO, source)), `${app}: COPY ${source}`).toBe(true);
          expect(dockerIgnored(source), `${app}: COPY ${source} is excluded by .dockerignore`).toBe(false);
        }
      }
    }
  });

  it(".dockerignore keeps installed and built trees, git, state and secrets out of the context", () => {
    for (const path of [
      "node_modules",
      "apps/gateway/node_modules",
      "apps/gateway/dist",
      "apps/web/dist/index.html",
      ".git",
      ".chatgrid",
      "Pulumi.local.yaml",
      "infra/stacks/local.ts",
    ]) {
      expect(dockerIgnored(path), path).toBe(true);
    }
    for (const path of ["infra/package.json", "packages/broker/src/index.ts", "apps/web/index.html", "tsconfig.json"]) {
      expect(dockerIgnored(path), path).toBe(false);
    }
  });
});

/** The build stage's `npm run build --workspace <name>`, run here. */
function buildCommand(app: App): string[] {
  const build = dockerfiles[app].stages.find((s) => s.name === "build")!;
  const run = build.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
  expect(run).toEqual([`npm run build --workspace @chatgrid/${app}`]);
  return run[0]!.split(" ");
}

/** `COPY --from=build /repo/<path> <dest>` of the runtime stage, as repository paths. */
function runtimeCopies(app: App): { source: string; dest: string }[] {
  return copiesOf(dockerfiles[app].stages.at(-1)!).flatMap((copy) =>
    copy.sources.map((source) => {
      expect(source.startsWith("/repo/"), source).toBe(true);
      return { source: join(REPO, source.slice("/repo/".length)), dest: copy.dest };
    }),
  );
}

describe("the images' contents and start commands, run here", () => {
  const builds: Record<string, { status: number | null; output: string }> = {};
  const temps: string[] = [];
  const children: ChildProcess[] = [];
  let redis: TestRedis;

  beforeAll(async () => {
    for (const app of ["gateway", "ai"] as const) {
      const [command, ...args] = buildCommand(app);
      const run = spawnSync(command!, args, { cwd: REPO, encoding: "utf8", timeout: 180_000 });
      builds[app] = { status: run.status, output: `${run.stdout}\n${run.stderr}` };
    }
    // The web build empties apps/web/dist, which the browser tests serve: like them, rebuild only when it is stale.
    buildCommand("web");
    try {
      ensureWebBuilt();
      builds.web = { status: 0, output: "" };
    } catch (error) {
      builds.web = { status: 1, output: (error as Error).message };
    }
    redis = await startTestRedis();
  }, 300_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await redis?.stop();
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  });

  const requireBuilt = (app: App) => {
    expect(
      builds[app]!.status,
      `the ${app} image's build command failed; run \`npm run build\` to see why:\n${builds[app]!.output.slice(-3000)}`,
    ).toBe(0);
  };

  it("the web image's build command is the web workspace's `vite build`, which the test support runs when stale", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "apps", "web", "package.json"), "utf8")) as {
      scripts?: Record<string, string>;
    };
    expect(pkg.scripts?.build, "apps/web/package.json has no build script").toBe("vite build");
    expect(buildCommand("web")).toEqual(["npm", "run", "build", "--workspace", "@chatgrid/web"]);
  });

  it.each(APPS)("%s: after the build, every file the runtime stage copies exists", (app) => {
    requireBuilt(app);
    for (const { source } of runtimeCopies(app)) {
      expect(existsSync(source), `${relative(REPO, source)} is missing: run \`npm run build\``).toBe(true);
    }
    const [dist] = runtimeCopies(app);
    const needed = app === "web" ? ["index.html"] : ["main.js", "package.json", "node_modules"];
    for (const file of needed) {
      expect(
        existsSync(join(dist!.source, file)),
        `${relative(REPO, dist!.source)}/${file} (run \`npm run build\`)`,
      ).toBe(true);
    }
    if (app !== "web") {
      // Only what main.js imports, at the installed versions: no dev dependencies in the image.
      const pkg = JSON.parse(readFileSync(join(dist!.source, "package.json"), "utf8")) as {
        type: string;
        dependencies: Record<string, string>;
      };
      expect(pkg.type).toBe("module");
      const declared = JSON.parse(readFileSync(join(REPO, "apps", app, "package.json"), "utf8")) as {
        devDependencies?: Record<string, string>;
      };
      for (const dev of [
        "vitest",
        "typescript",
        "tsx",
        "esbuild",
        "@biomejs/biome",
        ...Object.keys(declared.devDependencies ?? {}),
      ]) {
        expect(existsSync(join(dist!.source, "node_modules", dev)), `${dev} in ${app}'s image`).toBe(false);
      }
      expect(Object.keys(pkg.dependencies)).toEqual(expect.arrayContaining(["hono", "ioredis", "pino"]));
    }
  });

  /** A copy of what the runtime stage copies: the image's WORKDIR, with nothing of the repository around it. */
  function imageRoot(app: "gateway" | "ai"): string {
    const runtime = dockerfiles[app].stages.at(-1)!;
    expect(last(runtime, "WORKDIR")?.args).toBe("/app");
    const root = mkdtempSync(join(tmpdir(), `chatgrid-image-${app}-`));
    temps.push(root);
    for (const { source, dest } of runtimeCopies(app)) {
      expect(dest).toBe("./");
      cpSync(source, root, { recursive: true });
    }
    return root;
  }

  /** The Dockerfile's ENV, then what the stack would give the container. */
  function imageEnv(app: "gateway" | "ai", extra: Record<string, string>): Record<string, string> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const instruction of dockerfiles[app].stages.at(-1)!.instructions.filter((i) => i.keyword === "ENV")) {
      for (const pair of instruction.args.split(/\s+/)) {
        const [key = "", value = ""] = pair.split("=", 2);
        env[key] = value;
      }
    }
    // The stack gives every node the cluster secret (a generated Pulumi secret).
    return { ...env, CLUSTER_SECRET: "c".repeat(32), ...extra };
  }

  /** The runtime stage's CMD, with `node` being this Node. */
  function start(app: "gateway" | "ai", cwd: string, env: Record<string, string>): ChildProcess {
    const [command, ...args] = execForm(last(dockerfiles[app].stages.at(-1)!, "CMD")!.args);
    expect(command).toBe("node");
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    Object.defineProperty(child, "output", { get: () => output });
    children.push(child);
    return child;
  }
  const outputOf = (child: ChildProcess) => (child as unknown as { output: string }).output;

  async function waitHealthy(url: string, child: ChildProcess, timeoutMs = 20_000): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before healthy:\n${outputOf(child)}`);
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (response.ok) return response;
        last = `${response.status} ${await response.text()}`;
      } catch (error) {
        last = String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`${url} not healthy after ${timeoutMs} ms (last: ${last}):\n${outputOf(child)}`);
  }

  /** The image's HEALTHCHECK command, as Docker would run it inside the container. */
  function healthCheck(app: "gateway" | "ai", env: Record<string, string>): number | null {
    const check = last(dockerfiles[app].stages.at(-1)!, "HEALTHCHECK")!.args;
    const [command, ...args] = execForm(check.slice(check.indexOf("CMD ") + 4));
    expect(command).toBe("node");
    return spawnSync(process.execPath, args, { env, timeout: 10_000 }).status;
  }

  /** The liveness command (appLivenessCheck), as ECS would run it inside the container: the same way. */
  function livenessCheck(app: "gateway" | "ai", env: Record<string, string>): number | null {
    const [command, ...args] = appLivenessCheck[app];
    expect(command).toBe("node");
    return spawnSync(process.execPath, args, { env, timeout: 10_000 }).status;
  }

  function stopped(child: ChildProcess): Promise<number | null> {
    return new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      child.once("exit", (code) => resolve(code));
      child.kill("SIGTERM");
    });
  }

  it("gateway + AI node: each image's start command starts the app on a copy of /app; health answers; SIGTERM exits 0", async () => {
    requireBuilt("ai");
    requireBuilt("gateway");
    const [aiPort, gatewayPort, metricsPort, webPort, httpPort, stubPort] = await freePorts(6);
    const aiEnv = imageEnv("ai", { NODE_NAME: "ai-1", PORT: String(aiPort), REDIS_URL: redis.url });
    expect(aiEnv).toMatchObject({ NODE_ENV: "production", HOST: "0.0.0.0" });
    const ai = start("ai", imageRoot("ai"), aiEnv);
    const aiHealth = await waitHealthy(`http://127.0.0.1:${aiPort}/health`, ai);
    expect(await aiHealth.json()).toMatchObject({ status: "ok", node: "ai-1", redis: "up" });
    expect(healthCheck("ai", aiEnv)).toBe(0);
    expect(livenessCheck("ai", aiEnv)).toBe(0);

    const gatewayEnv = imageEnv("gateway", {
      NODE_NAME: "gateway-1",
      PORT: String(gatewayPort),
      METRICS_PORT: String(metricsPort),
      REDIS_URL: redis.url,
      AI_SERVICE_URLS: `ai-1=http://127.0.0.1:${aiPort}`,
    });
    const gateway = start("gateway", imageRoot("gateway"), gatewayEnv);
    const gatewayHealth = await waitHealthy(`http://127.0.0.1:${metricsPort}/health`, gateway);
    expect(await gatewayHealth.json()).toMatchObject({
      status: "ok",
      node: "gateway-1",
      redis: "up",
      aiNodes: [{ name: "ai-1", healthy: true }],
    });
    expect(healthCheck("gateway", gatewayEnv)).toBe(0);
    expect(livenessCheck("gateway", gatewayEnv)).toBe(0);
    // The commands ask the ports of the container's environment: with another METRICS_PORT / PORT (nothing there)
    // both fail, so the passes above are these apps answering.
    const [closed] = await freePorts(1);
    for (const [app, env, key] of [
      ["ai", aiEnv, "PORT"],
      ["gateway", gatewayEnv, "METRICS_PORT"],
    ] as const) {
      expect(healthCheck(app, { ...env, [key]: String(closed) })).toBe(1);
      expect(livenessCheck(app, { ...env, [key]: String(closed) })).toBe(1);
    }
    const session = await fetch(`http://127.0.0.1:${gatewayPort}/api/sessions`, { method: "POST" });
    expect(session.status).toBe(201);

    // The web image's start command (nginx -g "daemon off;") with its stack configuration: the same renderer,
    // the built client as web root, pid and temp files in a runtime dir, the gateway above as upstream.
    requireBuilt("web");
    const webRuntime = dockerfiles.web.stages.at(-1)!;
    const entrypoint = execForm(last(webRuntime, "ENTRYPOINT")!.args);
    expect(entrypoint).toEqual(["nginx", "-g", "daemon off;"]);
    const [webDist] = runtimeCopies("web");
    expect(webDist!.dest).toBe("/usr/share/nginx/html/");
    const nginxDir = mkdtempSync(join(tmpdir(), "chatgrid-image-web-"));
    temps.push(nginxDir);
    const topology = deriveTopology(
      parseTopologyConfig({ gatewayNodes: 1, aiNodes: 1, webPort, httpPort, metricsPort: stubPort }),
      {
        bindHost: "127.0.0.1",
        hostOf: () => "127.0.0.1",
        gatewayPort: () => gatewayPort!,
        gatewayMetricsPort: () => metricsPort!,
        aiPort: () => aiPort!,
        redisUrl: redis.url,
        allowedOrigins: [],
      },
    );
    writeFileSync(
      join(nginxDir, "nginx.conf"),
      renderNginxConf(topology, {
        errorLog: join(nginxDir, "error.log"),
        accessLog: "off",
        webRoot: webDist!.source,
        runtimeDir: nginxDir,
        listenHost: "127.0.0.1",
        ...(process.getuid?.() === 0 ? { user: "root" } : {}),
      }),
    );
    const nginxBinary = binaryPath(entrypoint[0]!);
    expect(existsSync(nginxBinary), `nginx is not installed (${nginxBinary}): apt-get install -y nginx`).toBe(true);
    const web = spawn(
      nginxBinary,
      ["-c", join(nginxDir, "nginx.conf"), "-p", nginxDir, "-e", join(nginxDir, "error.log"), ...entrypoint.slice(1)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(web);
    let webOutput = "";
    web.stderr?.on("data", (d: Buffer) => {
      webOutput += d.toString();
    });
    Object.defineProperty(web, "output", { get: () => webOutput });
    await waitHealthy(`http://127.0.0.1:${webPort}/healthz`, web);
    const page = await fetch(`http://127.0.0.1:${webPort}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe(readFileSync(join(webDist!.source, "index.html"), "utf8"));
    const proxied = await fetch(`http://127.0.0.1:${webPort}/api/health`);
    expect(await proxied.json()).toMatchObject({ node: "gateway-1", redis: "up" });
    const assets = readdirSync(join(webDist!.source, "assets"));
    expect(assets.length).toBeGreaterThan(0);
    const asset = await fetch(`http://127.0.0.1:${webPort}/assets/${assets[0]}`);
    expect(asset.status).toBe(200);
    expect(Number(asset.headers.get("content-length"))).toBe(
      statSync(join(webDist!.source, "assets", assets[0]!)).size,
    );

    expect(await stopped(web)).toBe(0);

    // Redis goes away: readiness fails on both (the AI node's own; the gateway's at once, its own Redis being gone, and
    // its view of the AI node turns unhealthy at its next probe), liveness passes on both. An orchestrator restarting
    // on readiness would replace them all here.
    await redis.stop();
    await waitFor("the AI node's readiness command to fail", () => healthCheck("ai", aiEnv) === 1, 15_000, 100);
    await waitFor(
      "the gateway's readiness command to fail",
      () => healthCheck("gateway", gatewayEnv) === 1,
      15_000,
      100,
    );
    expect(livenessCheck("ai", aiEnv)).toBe(0);
    expect(livenessCheck("gateway", gatewayEnv)).toBe(0);
    // New connections: fetch's pooled one from the start may be closed by the node's keep-alive timeout (5 s) just as
    // it is reused ("other side closed"), which says nothing about the node.
    const aiReadiness = await getOnNewConnection(`http://127.0.0.1:${aiPort}/health`);
    expect(aiReadiness.status).toBe(503);
    expect(JSON.parse(aiReadiness.body)).toMatchObject({ status: "degraded", redis: "down" });
    const gatewayReadiness = await waitFor(
      "the gateway's probe to find the AI node unready",
      async () => {
        const answer = await getOnNewConnection(`http://127.0.0.1:${metricsPort}/health`);
        const view = JSON.parse(answer.body) as { aiNodes?: { healthy?: boolean }[] };
        return view.aiNodes?.every((n) => n.healthy === false) ? answer : undefined;
      },
      15_000,
      100,
    );
    expect(gatewayReadiness.status).toBe(503);
    expect(JSON.parse(gatewayReadiness.body)).toMatchObject({
      status: "degraded",
      redis: "down",
      aiNodes: [{ name: "ai-1", healthy: false }],
    });
    expect(ai.exitCode).toBeNull();
    expect(gateway.exitCode).toBeNull();

    expect(await stopped(gateway)).toBe(0);
    expect(await stopped(ai)).toBe(0);
  });
});

/** A GET on a connection of its own (no keep-alive pool): its status and body. */
function getOnNewConnection(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      response.on("error", reject);
    }).on("error", reject);
  });
}
