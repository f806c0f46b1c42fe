// The harness of the real-engine tests: the provisioned Pulumi CLI, a stack of its own in a temp project with a file
// backend of its own, and the Docker CLI for what the tests look at. Nothing here changes the tracked stack files.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { beforeAll } from "vitest";
import { waitFor } from "../support/wait";

const run = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Where ../shared/tools/docker-stack/provision.sh keeps the CLI, its plugins, env.sh and images.json. */
export const TOOL_CACHE = process.env.CHATGRID_STACK_CACHE ?? "/var/cache/chatgrid-docker-stack";
export const PROVISION = "../shared/tools/docker-stack/provision.sh";
/** The stack name is fixed by the program (infra/index.ts accepts only "local"). */
export const STACK = "local";
/**
 * In every node's environment of the test stack (chatgrid:nodeEnv): how a leftover of an earlier test run is told
 * apart from someone's own `local` stack, which the tests never touch.
 */
export const OWNER_ENV = "CHATGRID_STACK_OWNER=test/docker";
/** Every container of the stack carries a `chatgrid.role` label; the network is `chatgrid`, the volume `chatgrid-redis-data`. */
export const PREFIX = "chatgrid";

const howToProvision = `run (as root, from the repository root): ${PROVISION}`;

/**
 * Runs `setUp` once before the file's tests (with the real engine's long timeout); the returned `ready()` throws its
 * error in every test, so a setup failure (no engine, no CLI, a failed build or `up`) fails them all, never skips.
 */
export function setUpOnce(setUp: () => Promise<void>, timeoutMs = 900_000): () => void {
  let setupError: unknown;
  beforeAll(async () => {
    try {
      await setUp();
    } catch (error) {
      setupError = error;
    }
  }, timeoutMs);
  return () => {
    if (setupError) throw setupError;
  };
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run("docker", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** What the tool provisioned, read from its cache dir; throws with the command to run when anything is missing. */
export function provisioned(): { pulumiRoot: string; env: Record<string, string>; images: Record<string, string> } {
  const envSh = join(TOOL_CACHE, "env.sh");
  const imagesJson = join(TOOL_CACHE, "images.json");
  const missing = [
    join(TOOL_CACHE, "bin", "pulumi"),
    join(TOOL_CACHE, "bin", "pulumi-language-nodejs"),
    envSh,
    imagesJson,
  ]
    .filter((path) => !existsSync(path))
    .map((path) => `  missing ${path}`);
  try {
    execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], { stdio: "pipe", timeout: 20_000 });
  } catch (error) {
    missing.push(`  no Docker engine answers (docker info: ${String(error).split("\n")[0]})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `the real-engine tests need a Docker engine, the Pulumi CLI and the stand-in images:\n${missing.join("\n")}\n${howToProvision}`,
    );
  }
  // env.sh is the tool's word on the CLI's environment: take exactly what it exports.
  const before = new Set(Object.keys(process.env));
  const dump = execFileSync("bash", ["-c", 'unset PULUMI_BACKEND_URL; . "$1" && env -0', "_", envSh], {
    encoding: "utf8",
  });
  const env: Record<string, string> = {};
  for (const entry of dump.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const [key, value] = [entry.slice(0, eq), entry.slice(eq + 1)];
    if (key === "PATH" || key.startsWith("PULUMI_") || !before.has(key)) env[key] = value;
  }
  const images = JSON.parse(readFileSync(imagesJson, "utf8")) as Record<string, string>;
  for (const key of ["redis", "kafka", "nginx", "node"]) {
    if (typeof images[key] !== "string") throw new Error(`${imagesJson} has no "${key}" image; ${howToProvision}`);
  }
  return { pulumiRoot: TOOL_CACHE, env, images };
}

export interface RealStack {
  stack: Stack;
  dir: string;
  /** Sets `chatgrid:` values (strings, as Pulumi keeps them) in the temp project's stack file. */
  configure(values: Record<string, string>): Promise<void>;
  /** Removes the temp project and its state (after destroy). */
  dispose(): void;
}

/**
 * A stack "local" of this checkout's program in a temp project: Pulumi.yaml copied with `main:` pointing at the
 * repository's infra/, node_modules linked (tsx and @pulumi/pulumi resolve from the project dir), Pulumi.local.yaml
 * of its own, and a file backend in the same temp dir. The CLI is the provisioned one.
 *
 * The dynamic provider (GeneratedSecret) needs `pulumi-resource-pulumi-nodejs`, which a normal Pulumi install ships
 * beside the CLI and the tool's does not; its env.sh also ignores ambient plugins. So the pulumi processes get a
 * bin dir of the temp project, first on their PATH, holding only a link to the launcher of @pulumi/pulumi, and
 * ambient plugins allowed (the Docker provider still comes from the tool's PULUMI_HOME).
 */
export async function createRealStack(config: Record<string, string>): Promise<RealStack> {
  const tool = provisioned();
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-docker-test-"));
  const project = join(dir, "project");
  const bin = join(dir, "bin");
  const state = join(dir, "state");
  for (const path of [project, bin, state]) mkdirSync(path);
  const pulumiYaml = readFileSync(join(REPO_ROOT, "Pulumi.yaml"), "utf8");
  const main = /^main: .*$/m;
  if (!main.test(pulumiYaml)) throw new Error("Pulumi.yaml has no `main:` line to point at the checkout");
  writeFileSync(join(project, "Pulumi.yaml"), pulumiYaml.replace(main, `main: ${join(REPO_ROOT, "infra")}/`));
  symlinkSync(join(REPO_ROOT, "node_modules"), join(project, "node_modules"));
  symlinkSync(
    join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "pulumi-resource-pulumi-nodejs"),
    join(bin, "pulumi-resource-pulumi-nodejs"),
  );

  const envVars: Record<string, string> = {
    ...tool.env,
    PATH: `${bin}:${tool.env.PATH ?? process.env.PATH}`,
    PULUMI_IGNORE_AMBIENT_PLUGINS: "false",
    PULUMI_BACKEND_URL: `file://${state}`,
    PULUMI_CONFIG_PASSPHRASE: "chatgrid-docker-test",
    PULUMI_SKIP_UPDATE_CHECK: "true",
  };
  const pulumiCommand = await PulumiCommand.get({ root: tool.pulumiRoot, skipVersionCheck: true });
  const stack = await LocalWorkspace.createStack({ stackName: STACK, workDir: project }, { pulumiCommand, envVars });
  const configure = async (values: Record<string, string>) => {
    const entries = Object.fromEntries(
      Object.entries(values).map(([key, value]) => [`chatgrid:${key}`, { value, secret: false }]),
    );
    await stack.setAllConfig(entries);
  };
  await configure({ ...config, images: JSON.stringify(tool.images) });
  return { stack, dir, configure, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Everything Docker holds of a chatgrid stack: containers (by label or name), the network, the volume. */
export async function stackLeftovers(): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
  const lines = (text: string) => text.split("\n").filter(Boolean);
  const byLabel = lines(await docker("ps", "-a", "--filter", "label=chatgrid.role", "--format", "{{.Names}}"));
  const byName = lines(await docker("ps", "-a", "--filter", `name=^${PREFIX}-`, "--format", "{{.Names}}"));
  const networks = lines(await docker("network", "ls", "--format", "{{.Name}}")).filter(
    (name) => name === PREFIX || name.startsWith(`${PREFIX}-`),
  );
  const volumes = [
    ...new Set([
      ...lines(await docker("volume", "ls", "--filter", "label=chatgrid.role", "--format", "{{.Name}}")),
      ...lines(await docker("volume", "ls", "--filter", `name=^${PREFIX}-`, "--format", "{{.Name}}")),
    ]),
  ];
  return { containers: [...new Set([...byLabel, ...byName])], networks, volumes };
}

/**
 * Removes what an earlier, interrupted test run left (container names are fixed, so it would block `up`). Only the
 * tests' own stack: if a chatgrid container exists without the tests' marker in its environment, this throws
 * instead (someone's own `pulumi up --stack local`, with its Redis data).
 */
export async function removeLeftovers(log: (line: string) => void): Promise<void> {
  const found = await stackLeftovers();
  if (found.containers.length + found.networks.length + found.volumes.length === 0) return;
  const foreign: string[] = [];
  for (const name of found.containers) {
    const env = await docker("inspect", "-f", "{{json .Config.Env}}", name);
    if (!(JSON.parse(env) as string[]).includes(OWNER_ENV) && /^chatgrid-(gateway|ai)-\d+$/.test(name)) {
      foreign.push(name);
    }
  }
  if (foreign.length > 0) {
    throw new Error(
      `a chatgrid stack that is not the tests' runs here (${foreign.join(", ")}); its container names are the tests' too. ` +
        "Stop it first: pulumi destroy --stack local (or docker rm -f those containers)",
    );
  }
  log(`removing leftovers of an earlier run: ${JSON.stringify(found)}`);
  if (found.containers.length > 0) await docker("rm", "-f", "-v", ...found.containers);
  for (const network of found.networks) await docker("network", "rm", network);
  if (found.volumes.length > 0) await docker("volume", "rm", "-f", ...found.volumes);
}

export interface ContainerState {
  /** The container's id: a replaced container has another. */
  id: string;
  name: string;
  status: string;
  health?: string;
  pid: number;
  restartCount: number;
  startedAt: string;
}

export async function inspect(name: string): Promise<ContainerState> {
  const format =
    "{{.Id}} {{json .Name}} {{json .State.Status}} {{if .State.Health}}{{json .State.Health.Status}}{{else}}null{{end}} {{.State.Pid}} {{.RestartCount}} {{json .State.StartedAt}}";
  const [id, n, status, health, pid, restarts, startedAt] = (await docker("inspect", "-f", format, name)).split(" ");
  return {
    id: id!,
    name: JSON.parse(n!).replace(/^\//, ""),
    status: JSON.parse(status!),
    health: JSON.parse(health!) ?? undefined,
    pid: Number(pid),
    restartCount: Number(restarts),
    startedAt: JSON.parse(startedAt!),
  };
}

/** The names of the stack's containers now (sorted). */
export async function containerNames(): Promise<string[]> {
  const names = await docker("ps", "-a", "--filter", "label=chatgrid.role", "--format", "{{.Names}}");
  return names.split("\n").filter(Boolean).sort();
}

/** SIGKILL of the container's main process through its host pid: a crash, which the restart policy answers. */
export async function crash(name: string): Promise<ContainerState> {
  const before = await inspect(name);
  if (before.status !== "running" || before.pid <= 0) throw new Error(`${name} is not running: ${before.status}`);
  process.kill(before.pid, "SIGKILL");
  return before;
}

/** Waits until the container runs again after `before` (restarted by Docker) and reports healthy. */
export async function waitRestartedHealthy(before: ContainerState, timeoutMs = 90_000): Promise<ContainerState> {
  return waitFor(
    `${before.name} restarted and healthy`,
    async () => {
      const now = await inspect(before.name);
      return now.startedAt !== before.startedAt && now.status === "running" && now.health === "healthy" && now;
    },
    timeoutMs,
    250,
  );
}

/** `GET` inside a container, with the Node.js of the app images (they have no wget or curl). */
export async function fetchInside(container: string, url: string): Promise<string> {
  return docker(
    "exec",
    container,
    "node",
    "-e",
    `fetch(${JSON.stringify(url)}).then(async (r) => process.stdout.write(await r.text()), (e) => { console.error(String(e)); process.exit(1); })`,
  );
}
