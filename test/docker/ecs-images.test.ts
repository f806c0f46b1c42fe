// The three app images run the way ECS Fargate runs them, in real containers on the provisioned engine: built from
// this checkout with BuildKit and the stand-in base images, then each started from the container definition the
// aws stack's own code produces (containerDefinitions of infra/components/aws/fargate.ts, fed by deriveTopology with
// awsPlacement, the health check constants and the web entry's entry point, command and AWS nginx rendering),
// translated flag by flag into `docker run`: read-only root filesystem, the image's own user, the definition's
// environment, the secrets as environment (ECS injects them so), its writable paths as fresh volumes and nothing
// else, its task size, its stop timeout. The tests run in order on that one set of containers.
//
// What differs from Fargate, on purpose:
// - Network: one user-defined bridge network of this test; each container has the network alias of its Cloud Map
//   name (`gateway-1.chatgrid.internal`, …), so the names of the definitions resolve (Docker's embedded DNS) as they
//   do in the VPC. Redis is a stand-in container with a password (plain redis://, not ElastiCache's TLS: TLS is
//   tested in test/e2e/redis-tls.test.ts). 1 gateway + 1 AI node, Kafka off (no MSK: no KAFKA_* environment).
// - nginx: the stand-in is 1.26.3, which rejects the upstream `resolve` parameter (open-source nginx has it since
//   1.27.3; the real pin is nginx:1.28-alpine). The AWS rendering is used with exactly ` resolve` stripped from the
//   upstream's server lines; nginx then resolves the names once, at load, so the web container starts after the
//   gateway's (its alias must exist). The resolver line is rendered with Docker's embedded DNS (127.0.0.11) for the
//   VPC resolver (awsNginxOptions' resolverAddress); without `resolve` nothing asks it.
// - Health: ECS runs the task definition's check and ignores the image's HEALTHCHECK (readiness); the containers run
//   with --no-healthcheck and the test runs the ECS command itself (`docker exec`, exec form as "CMD" means), with
//   the check's timeout, and expects exit 0 within startPeriod + retries × interval.
// - Logs: Docker's default driver instead of awslogs (the test reads them when something fails).
//
// Everything this file creates carries the label `chatgrid.ecs-test` or the image repository `chatgrid-ecs-test/`,
// names start with `ecs-test-`: never `chatgrid-*` names or the `chatgrid.role` label of the stack test's resources.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { AI_HEALTH_CHECK } from "../../infra/components/aws/ai-node-group";
import { subnetPlan } from "../../infra/components/aws/cidr";
import { containerDefinitions, type EcsHealthCheck, type FargateTaskArgs } from "../../infra/components/aws/fargate";
import { GATEWAY_HEALTH_CHECK } from "../../infra/components/aws/gateway-group";
import { WEB_COMMAND, WEB_ENTRY_POINT, WEB_HEALTH_CHECK, WEB_RUNTIME_DIR } from "../../infra/components/aws/web-entry";
import { baseImageBuildArgs } from "../../infra/images";
import { renderNginxConf } from "../../infra/nginx/render";
import { freePort } from "../../infra/runner/ports";
import { AWS, AWS_NODE_ENV, awsNginxOptions, awsPlacement } from "../../infra/stacks/aws";
import { type CpuArchitecture, PLATFORM_OF, parseAwsStackConfig, type TaskSize } from "../../infra/stacks/aws-config";
import { deriveTopology, type NodeSpec } from "../../infra/topology";
import { ChatClient } from "../support/chat-client";
import { expectExactAnswers } from "../support/streams";
import { waitFor } from "../support/wait";
import { docker, PROVISION, provisioned, REPO_ROOT, setUpOnce } from "./real-stack";

const run = promisify(execFile);
const log = (line: string) => console.log(`[ecs-images] ${line}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const lines = (text: string) => text.split("\n").filter(Boolean);

/** On every container, network and volume of this file (images go by their repository prefix). */
const LABEL = "chatgrid.ecs-test";
const NAME_PREFIX = "ecs-test-";
const NETWORK = "ecs-test";
/**
 * A fixed subnet of our own: with an automatic one, Docker could hand this network 172.20.0.0/16, the stack test's
 * fixed subnet, when both files of the docker project run side by side (the stack's network would then fail).
 */
const SUBNET = "172.29.37.0/24";
const IMAGE_REPO = "chatgrid-ecs-test";
/** Docker's embedded DNS, in the VPC resolver's place (see the header). */
const DOCKER_DNS = "127.0.0.11";
/** Fargate's default nofile limit, soft and hard (ECS API reference, Ulimit); the task definitions set no ulimits. */
const FARGATE_NOFILE = 65_535;
const REDIS_ALIAS = "redis";
const REDIS_PORT = 6379;

type App = "gateway" | "ai" | "web";
const APPS: App[] = ["gateway", "ai", "web"];
const imageTag = (app: App) => `${IMAGE_REPO}/${app}:ecs`;

/** The part of an ECS container definition this test turns into `docker run` flags (fargate.ts writes it). */
interface ContainerDefinition {
  name: string;
  image: string;
  essential: boolean;
  readonlyRootFilesystem: boolean;
  stopTimeout: number;
  user?: string;
  portMappings: { containerPort: number; protocol: string }[];
  environment: { name: string; value: string }[];
  secrets: { name: string; valueFrom: string }[];
  healthCheck: EcsHealthCheck;
  mountPoints: { sourceVolume: string; containerPath: string; readOnly: boolean }[];
  entryPoint?: string[];
  command?: string[];
}

/** The definition the aws stack would register for these task arguments (the same function, resolved here). */
async function definitionOf(args: FargateTaskArgs): Promise<ContainerDefinition> {
  const json = await new Promise<string>((resolve) => containerDefinitions(args).apply(resolve));
  const defs = JSON.parse(json) as ContainerDefinition[];
  expect(defs).toHaveLength(1);
  return defs[0]!;
}

/**
 * `docker run` for one ECS container definition, flag by flag. `secrets` are the values ECS would fetch from
 * Secrets Manager (as environment, as ECS injects them), `volumes` the Docker volume of each task volume.
 */
function dockerRunArgs(
  def: ContainerDefinition,
  placement: {
    image: string;
    size: TaskSize;
    aliases: string[];
    secrets: Record<string, string>;
    volumes: Record<string, string>;
    publish?: string;
  },
): string[] {
  const args = ["run", "--detach", "--name", `${NAME_PREFIX}${def.name}`, "--label", `${LABEL}=1`];
  args.push("--network", NETWORK, ...placement.aliases.flatMap((alias) => ["--network-alias", alias]));
  if (def.readonlyRootFilesystem) args.push("--read-only");
  // No `user` in the definition: the image's USER, as on ECS (no --user).
  if (def.user !== undefined) args.push("--user", def.user);
  args.push("--stop-timeout", String(def.stopTimeout));
  // The task size (CPU units of 1/1024 vCPU, MiB): the only container of its task gets all of it.
  args.push("--cpus", String(placement.size.cpu / 1024), "--memory", `${placement.size.memory}m`);
  // ECS runs the definition's healthCheck, not the image's HEALTHCHECK; the test runs that command itself.
  args.push("--no-healthcheck");
  for (const { name, value } of def.environment) args.push("--env", `${name}=${value}`);
  for (const { name } of def.secrets) {
    const value = placement.secrets[name];
    if (value === undefined) throw new Error(`${def.name}: no value for the secret ${name}`);
    args.push("--env", `${name}=${value}`);
  }
  for (const mount of def.mountPoints) {
    const volume = placement.volumes[mount.sourceVolume];
    if (volume === undefined)
      throw new Error(`${def.name}: no Docker volume for the task volume ${mount.sourceVolume}`);
    args.push("--mount", `type=volume,src=${volume},dst=${mount.containerPath}${mount.readOnly ? ",readonly" : ""}`);
  }
  if (placement.publish) args.push("--publish", placement.publish);
  // The docker CLI's --entrypoint takes one word: the rest of ECS's entryPoint goes before the command.
  const [entry, ...entryArgs] = def.entryPoint ?? [];
  if (entry !== undefined) args.push("--entrypoint", entry);
  args.push(placement.image, ...entryArgs, ...(def.command ?? []));
  return args;
}

/** The ECS health command (exec form: "CMD" then argv) run in the container, within the check's timeout. */
async function ecsHealthCommand(container: string, check: EcsHealthCheck): Promise<{ ok: boolean; output: string }> {
  const [kind, ...command] = check.command;
  if (kind !== "CMD") throw new Error(`expected an exec-form ECS health check ("CMD", …), got ${kind}`);
  try {
    const { stdout, stderr } = await run("docker", ["exec", container, ...command], { timeout: check.timeout * 1000 });
    return { ok: true, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    return { ok: false, output: String(error).split("\n").slice(0, 3).join(" ") };
  }
}

/** The status of a GET inside a container (Node of the app images: no wget or curl there); 0 when it fails. */
async function statusInside(container: string, url: string): Promise<number> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(2000) }).then((r) => console.log(r.status), () => console.log(0))`;
  return Number(await docker("exec", container, "node", "-e", script));
}

/** Removes everything this file creates: containers, network, volumes (by label), image tags (by repository). */
async function removeOurs(): Promise<string[]> {
  const removed: string[] = [];
  const containers = lines(await docker("ps", "-a", "--filter", `label=${LABEL}`, "--format", "{{.Names}}"));
  if (containers.length > 0) await docker("rm", "--force", "--volumes", ...containers);
  removed.push(...containers);
  for (const network of lines(await docker("network", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}"))) {
    await docker("network", "rm", network);
    removed.push(network);
  }
  const volumes = lines(await docker("volume", "ls", "--filter", `label=${LABEL}`, "--format", "{{.Name}}"));
  if (volumes.length > 0) await docker("volume", "rm", "--force", ...volumes);
  removed.push(...volumes);
  const images = lines(
    await docker("images", "--filter", `reference=${IMAGE_REPO}/*`, "--format", "{{.Repository}}:{{.Tag}}"),
  );
  if (images.length > 0) await docker("rmi", "--force", ...images);
  removed.push(...images);
  return removed;
}

/**
 * A docker CLI that builds with BuildKit. From CLI 23.0 on, `docker build` is BuildKit only through the buildx
 * plugin; without it the CLI falls back to the legacy builder, which fails on the Dockerfiles' first line
 * (`FROM --platform=$BUILDPLATFORM`: "failed to parse platform"). CLIs before 23.0 (Debian's docker.io, 20.10, which
 * provision.sh installs with the engine) have a BuildKit client of their own, on with DOCKER_BUILDKIT=1.
 */
async function buildkitCli(): Promise<{ command: string; buildx: boolean; env: NodeJS.ProcessEnv; how: string }> {
  const tried: string[] = [];
  for (const command of ["docker", "/usr/bin/docker"]) {
    const version = await run(command, ["version", "--format", "{{.Client.Version}}"]).then(
      (r) => r.stdout.trim(),
      () => undefined,
    );
    if (!version) {
      tried.push(`${command}: no such CLI`);
      continue;
    }
    if (
      await run(command, ["buildx", "version"]).then(
        () => true,
        () => false,
      )
    ) {
      return { command, buildx: true, env: process.env, how: `${command} ${version} with buildx` };
    }
    if (Number(version.split(".")[0]) < 23) {
      return {
        command,
        buildx: false,
        env: { ...process.env, DOCKER_BUILDKIT: "1" },
        how: `${command} ${version} (its own BuildKit client, DOCKER_BUILDKIT=1)`,
      };
    }
    tried.push(
      `${command} ${version}: no buildx plugin (its legacy builder cannot read FROM --platform=$BUILDPLATFORM)`,
    );
  }
  throw new Error(
    `no docker CLI here builds with BuildKit:\n  ${tried.join("\n  ")}\n` +
      `run (as root, from the repository root): ${PROVISION} (with the engine it installs Debian's docker.io, whose 20.10 CLI, /usr/bin/docker, has BuildKit built in), or install the docker buildx plugin`,
  );
}

/** Builds the three images from this checkout, with the stand-in base images, for the engine's platform. */
async function buildImages(baseImages: Record<string, string>, platform: string): Promise<void> {
  const cli = await buildkitCli();
  const buildArgs = Object.entries(baseImageBuildArgs({ node: baseImages.node!, nginx: baseImages.nginx! })).flatMap(
    ([name, value]) => ["--build-arg", `${name}=${value}`],
  );
  for (const app of APPS) {
    const started = Date.now();
    const args = [
      "build",
      ...(cli.buildx ? ["--load"] : []),
      "--progress",
      "plain",
      "--platform",
      platform,
      ...buildArgs,
      "--file",
      join(REPO_ROOT, "apps", app, "Dockerfile"),
      "--tag",
      imageTag(app),
      REPO_ROOT,
    ];
    try {
      await run(cli.command, args, { env: cli.env, maxBuffer: 256 * 1024 * 1024, timeout: 600_000 });
    } catch (error) {
      const output = (error as { stderr?: string }).stderr ?? String(error);
      throw new Error(`${cli.how}: docker build of ${app} failed:\n${output.split("\n").slice(-40).join("\n")}`);
    }
    log(`built ${imageTag(app)} (${platform}) with ${cli.how}: ${seconds(Date.now() - started)}`);
  }
}

interface Started {
  container: string;
  def: ContainerDefinition;
  /** When `docker run` returned: the health check's budget counts from here. */
  at: number;
  /** Docker's StartedAt, to tell a restarted container. */
  startedAt: string;
}

describe("the three images run as the ECS task definitions say (read-only, their user, the AWS environment)", () => {
  const config = parseAwsStackConfig({ gatewayNodes: "1", aiNodes: "1", kafkaMode: "off" }, "us-east-1");
  const redisPassword = randomBytes(24).toString("hex");
  const secrets = {
    REDIS_URL: `redis://:${redisPassword}@${REDIS_ALIAS}:${REDIS_PORT}`,
    CLUSTER_SECRET: randomBytes(32).toString("hex"),
  };
  const started = new Map<string, Started>();
  const of = (name: string) => {
    const found = started.get(name);
    if (!found) throw new Error(`${name} was not started`);
    return found;
  };
  let webUrl = "";
  let platform = "";
  let loadedConf = "";
  const clients: ChatClient[] = [];
  const track = (client: ChatClient) => {
    clients.push(client);
    return client;
  };

  // A setup failure (no engine, no BuildKit CLI, a failed build or start) fails every test with its message.
  const ready = setUpOnce(setUp);

  async function setUp() {
    const tool = provisioned();
    const leftovers = await removeOurs();
    if (leftovers.length > 0) log(`removed leftovers of an earlier run: ${leftovers.join(", ")}`);
    platform = await docker("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}");
    const architecture = (Object.entries(PLATFORM_OF) as [CpuArchitecture, string][]).find(
      ([, p]) => p === platform,
    )?.[0];
    if (!architecture)
      throw new Error(`the engine's platform ${platform} is none of Fargate's (${Object.values(PLATFORM_OF)})`);
    const buildStarted = Date.now();
    await buildImages(tool.images, platform);
    log(`three images: ${seconds(Date.now() - buildStarted)}`);

    await docker("network", "create", "--driver", "bridge", "--subnet", SUBNET, "--label", `${LABEL}=1`, NETWORK);
    // The Redis stand-in (ElastiCache's place): a password in a config file written from the environment (not on
    // the command line), protected mode on, no persistence (its data dir a tmpfs: no volume of its own).
    await docker(
      "run",
      "--detach",
      "--name",
      `${NAME_PREFIX}redis`,
      "--label",
      `${LABEL}=1`,
      "--network",
      NETWORK,
      "--network-alias",
      REDIS_ALIAS,
      "--tmpfs",
      "/data",
      "--env",
      `REDISCLI_AUTH=${redisPassword}`,
      "--entrypoint",
      "sh",
      tool.images.redis!,
      "-c",
      `printf 'requirepass "%s"\\n' "$REDISCLI_AUTH" > /data/auth.conf && exec redis-server /data/auth.conf --port ${REDIS_PORT} --protected-mode yes --save '' --appendonly no`,
    );
    await waitForRedis();

    // The aws stack's own derivation: its placement (Cloud Map names, fixed ports, registry-only AI discovery) and,
    // as buildAwsStack adds to every node, SHUTDOWN_GRACE_MS (and KAFKA_* only with MSK, off here).
    const topology = deriveTopology(config.topology, awsPlacement(config));
    const hostOf = awsPlacement(config).hostOf;
    const nodeTask = (node: NodeSpec, healthCheck: EcsHealthCheck, size: TaskSize): FargateTaskArgs => ({
      container: node.name,
      image: imageTag(node.role),
      size,
      architecture,
      executionRoleArn: "arn:aws:iam::123456789012:role/ecs-test-execution",
      logGroupName: `/chatgrid/ecs-test/${node.name}`,
      region: config.region,
      ports: [...new Set([node.port, node.metricsPort])],
      environment: { ...node.env, ...AWS_NODE_ENV },
      secrets: Object.fromEntries(
        Object.keys(secrets).map((name) => [name, `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}`]),
      ),
      healthCheck,
    });
    const nodes = [
      { node: topology.aiNodes[0]!, check: AI_HEALTH_CHECK, size: config.tasks.ai },
      { node: topology.gateways[0]!, check: GATEWAY_HEALTH_CHECK, size: config.tasks.gateway },
    ];
    // The AI node, then the gateway, then web: without `resolve`, nginx resolves the gateway's name when it loads.
    for (const { node, check, size } of nodes) {
      const def = await definitionOf(nodeTask(node, check, size));
      await start(def, { image: imageTag(node.role), size, aliases: [node.host], secrets, volumes: {} });
    }

    // The web task: the renderer's AWS output (the ALB's public subnets trusted, the resolver), ` resolve` stripped.
    const renderedConf = renderNginxConf(
      { ...topology, config: { ...topology.config, webPort: AWS.ports.web } },
      awsNginxOptions(
        subnetPlan(AWS.cidr, config.availabilityZones.length).map((zone) => zone.public),
        DOCKER_DNS,
      ),
    );
    loadedConf = withoutResolve(renderedConf, topology.gateways.length);
    const webPort = await freePort();
    webUrl = `http://127.0.0.1:${webPort}`;
    const webDef = await definitionOf({
      container: "web",
      image: imageTag("web"),
      size: config.tasks.web,
      architecture,
      executionRoleArn: "arn:aws:iam::123456789012:role/ecs-test-execution",
      logGroupName: "/chatgrid/ecs-test/web",
      region: config.region,
      ports: [AWS.ports.web],
      environment: { CHATGRID_NGINX_CONF: loadedConf },
      secrets: {},
      healthCheck: WEB_HEALTH_CHECK,
      writablePaths: [WEB_RUNTIME_DIR],
      entryPoint: WEB_ENTRY_POINT,
      command: WEB_COMMAND,
    });
    // A fresh volume per task volume, as Fargate gives each task: Docker fills an empty named volume from the
    // image's directory at first mount (contents, owner and mode), as Fargate does from the image's VOLUME /tmp.
    const volumes: Record<string, string> = {};
    for (const mount of webDef.mountPoints) {
      const volume = `${NAME_PREFIX}web-${mount.sourceVolume}`;
      await docker("volume", "create", "--label", `${LABEL}=1`, volume);
      volumes[mount.sourceVolume] = volume;
    }
    await start(webDef, {
      image: imageTag("web"),
      size: config.tasks.web,
      aliases: [hostOf("web")],
      secrets: {},
      volumes,
      publish: `127.0.0.1:${webPort}:${AWS.ports.web}`,
    });
  }

  async function start(def: ContainerDefinition, placement: Parameters<typeof dockerRunArgs>[1]) {
    const container = `${NAME_PREFIX}${def.name}`;
    await docker(...dockerRunArgs(def, placement));
    const at = Date.now();
    const startedAt = JSON.parse(await docker("inspect", "--format", "{{json .State.StartedAt}}", container)) as string;
    started.set(def.name, { container, def, at, startedAt });
  }

  async function waitForRedis() {
    await waitFor(
      "the Redis stand-in to answer PONG",
      async () =>
        (await docker("exec", `${NAME_PREFIX}redis`, "redis-cli", "-p", String(REDIS_PORT), "ping")) === "PONG",
      30_000,
      100,
    );
  }

  afterAll(async () => {
    for (const client of clients) client.close();
    const removed = await removeOurs().catch((error: unknown) => [`cleanup failed: ${String(error)}`]);
    log(`cleaned up: ${removed.join(", ")}`);
  }, 120_000);

  it("the three images build from this checkout with BuildKit (FROM --platform=$BUILDPLATFORM), for the host platform, each with its unprivileged user", async () => {
    ready();
    for (const app of APPS) {
      const [os, arch, user, volumes] = (
        await docker(
          "image",
          "inspect",
          "--format",
          "{{.Os}} {{.Architecture}} {{json .Config.User}} {{json .Config.Volumes}}",
          imageTag(app),
        )
      ).split(" ");
      expect(`${os}/${arch}`, app).toBe(platform);
      expect(JSON.parse(user!), app).toBe(app === "web" ? "nginx" : "node");
      // Only web declares a volume, its task's one writable path.
      expect(JSON.parse(volumes!), app).toEqual(app === "web" ? { [WEB_RUNTIME_DIR]: {} } : null);
    }
  });

  it("each container passes its ECS health command within startPeriod + retries × interval", async () => {
    ready();
    for (const name of ["gateway-1", "ai-1", "web"]) {
      const { container, def, at } = of(name);
      const check = def.healthCheck;
      expect(check.command, name).toEqual(
        (name === "web" ? WEB_HEALTH_CHECK : name === "ai-1" ? AI_HEALTH_CHECK : GATEWAY_HEALTH_CHECK).command,
      );
      const budgetMs = (check.startPeriod + check.retries * check.interval) * 1000;
      let last = "";
      try {
        await waitFor(
          `${name}'s ECS health command to exit 0`,
          async () => {
            const result = await ecsHealthCommand(container, check);
            last = result.output;
            return result.ok;
          },
          Math.max(0, at + budgetMs - Date.now()),
          250,
        );
      } catch (error) {
        throw new Error(`${String(error)}\nlast check: ${last}\n${await logsOf(container)}`);
      }
      log(`${name}: ECS health command exit 0 after ${seconds(Date.now() - at)} (budget ${seconds(budgetMs)})`);
    }
  });

  it("the root filesystem is read-only and the only writable path is web's /tmp volume, which nginx writes as its own user", async () => {
    ready();
    for (const name of ["gateway-1", "ai-1", "web"]) {
      const { container, def } = of(name);
      expect(def.readonlyRootFilesystem, name).toBe(true);
      const [readOnly, user, mounts] = (
        await docker(
          "inspect",
          "--format",
          "{{.HostConfig.ReadonlyRootfs}} {{json .Config.User}} {{json .Mounts}}",
          container,
        )
      ).split(" ");
      expect(readOnly, name).toBe("true");
      // The image's user, no --user: the processes run unprivileged.
      expect(JSON.parse(user!), name).toBe(name === "web" ? "nginx" : "node");
      expect(await docker("exec", container, "id", "-un"), name).toBe(name === "web" ? "nginx" : "node");
      // Exactly the definition's mount points: no anonymous volume from an image VOLUME, no tmpfs.
      const found = (JSON.parse(mounts!) as { Type: string; Destination: string; RW: boolean }[]).map((m) => ({
        type: m.Type,
        path: m.Destination,
        rw: m.RW,
      }));
      expect(found, name).toEqual(
        def.mountPoints.map((m) => ({ type: "volume", path: m.containerPath, rw: !m.readOnly })),
      );
      expect(
        def.mountPoints.map((m) => m.containerPath),
        name,
      ).toEqual(name === "web" ? [WEB_RUNTIME_DIR] : []);
      // Even root cannot write the root filesystem (so the check below is about read-only, not permissions).
      const write = await run("docker", [
        "exec",
        "--user",
        "0",
        container,
        "sh",
        "-c",
        ": > /etc/ecs-write-probe",
      ]).then(
        () => "written",
        (error: { stderr?: string }) => error.stderr ?? "",
      );
      expect(write, name).toMatch(/Read-only file system/);
    }
    // The volume came from the image's /tmp: root's, sticky and world-writable, so the nginx user wrote its
    // configuration, pid and temp dirs there (as WEB_COMMAND and the rendering's runtimeDir say).
    const web = of("web").container;
    expect(await docker("exec", web, "stat", "-c", "%a %U", WEB_RUNTIME_DIR)).toBe("1777 root");
    const owned = lines(await docker("exec", web, "sh", "-c", `cd ${WEB_RUNTIME_DIR} && stat -c '%U %n' *`));
    expect(owned.sort()).toEqual(
      ["client_body_temp", "fastcgi_temp", "nginx.conf", "nginx.pid", "proxy_temp", "scgi_temp", "uwsgi_temp"].map(
        (file) => `nginx ${file}`,
      ),
    );
    expect(await docker("exec", web, "cat", `${WEB_RUNTIME_DIR}/nginx.conf`)).toBe(loadedConf.trim());
  });

  it("web: nginx's own /healthz answers 200, and /api/health reaches gateway-1 through the rendered upstream (by its Cloud Map name)", async () => {
    ready();
    const healthz = await fetch(`${webUrl}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.text()).toBe("ok\n");
    const upstream = /upstream chatgrid_gateways \{([^}]*)\}/.exec(loadedConf)?.[1] ?? "";
    expect([...upstream.matchAll(/^\s*server (\S+) /gm)].map((m) => m[1])).toEqual([
      "gateway-1.chatgrid.internal:8081",
    ]);
    // 200 once gateway-1 knows a healthy AI node (ai-1, from the signed registry in Redis).
    const health = await waitFor(
      "/api/health through web to be 200",
      async () => {
        const response = await fetch(`${webUrl}/api/health`);
        return response.status === 200 && ((await response.json()) as { node: string; redis: string });
      },
      30_000,
      250,
    );
    expect(health).toMatchObject({ node: "gateway-1", redis: "up" });
    // nginx loaded the rendering without an error. The one alert allowed: this engine caps a container's open files
    // at its own limit (20000 here, --ulimit cannot raise it), below the rendering's worker_rlimit_nofile, so the
    // workers' setrlimit fails and they keep that cap. Fargate's default nofile limit is 65535 (soft and hard; ECS
    // API reference, Ulimit), which the rendering fits.
    const { stderr } = await run("docker", ["logs", of("web").container]);
    const problems = lines(stderr).filter(
      (line) =>
        /\[(emerg|alert|crit|error)\]/.test(line) && !/\[alert\] .*setrlimit\(RLIMIT_NOFILE, \d+\) failed/.test(line),
    );
    expect(problems).toEqual([]);
    expect(Number(/^worker_rlimit_nofile (\d+);/m.exec(loadedConf)?.[1])).toBeLessThanOrEqual(FARGATE_NOFILE);
  });

  it("a chat over REST and WebSocket through the web container streams to done (gateway-1 → ai-1 by its Cloud Map name)", async () => {
    ready();
    const client = track(new ChatClient(webUrl));
    await client.createSession();
    const welcome = await client.connect();
    expect(welcome.node).toBe("gateway-1");
    const accepted = await client.chat("[demo:tokens=30] hello through the ECS-shaped containers");
    await expectExactAnswers([{ client, ...accepted }]);
    const view = client.view(accepted.streamId);
    expect(view.done?.aiNode).toBe("ai-1");
    expect(view.text.split(" ").length).toBeGreaterThanOrEqual(30);
  });

  it("nothing was written outside the declared writable paths: docker diff is empty for every container", async () => {
    ready();
    for (const name of ["gateway-1", "ai-1", "web"]) {
      expect(await docker("diff", of(name).container), name).toBe("");
    }
  });

  it("with Redis stopped the liveness commands still exit 0 (readiness /health is 503), so ECS would replace nothing; with Redis back they serve again, never restarted", async () => {
    ready();
    const gateway = of("gateway-1");
    const ai = of("ai-1");
    const web = of("web");
    const readiness = async () => ({
      gateway: await statusInside(gateway.container, `http://127.0.0.1:${AWS.ports.gatewayMetrics}/health`),
      ai: await statusInside(ai.container, `http://127.0.0.1:${AWS.ports.ai}/health`),
    });
    expect(await readiness()).toEqual({ gateway: 200, ai: 200 });

    await docker("stop", `${NAME_PREFIX}redis`);
    // The AI node's readiness follows its Redis connection; the gateway's follows its probe of ai-1 (every 2 s).
    await waitFor(
      "readiness 503 on gateway-1 and ai-1",
      async () => {
        const now = await readiness();
        return now.gateway === 503 && now.ai === 503;
      },
      30_000,
      250,
    );
    // ECS marks a container unhealthy after `retries` failed checks in a row: here every one of them passes.
    for (const { container, def } of [gateway, ai, web]) {
      for (let i = 0; i < def.healthCheck.retries; i++) {
        const result = await ecsHealthCommand(container, def.healthCheck);
        expect(result, `${def.name}, check ${i + 1}`).toMatchObject({ ok: true });
      }
    }
    expect(await readiness(), "still not ready after the liveness checks").toEqual({ gateway: 503, ai: 503 });
    expect((await fetch(`${webUrl}/api/health`)).status).toBe(503);

    await docker("start", `${NAME_PREFIX}redis`);
    await waitForRedis();
    await waitFor(
      "readiness 200 again on gateway-1 and ai-1",
      async () => {
        const now = await readiness();
        return now.gateway === 200 && now.ai === 200;
      },
      60_000,
      250,
    );
    for (const { container, startedAt, def } of [gateway, ai, web]) {
      const [status, restarts, since] = (
        await docker("inspect", "--format", "{{.State.Status}} {{.RestartCount}} {{json .State.StartedAt}}", container)
      ).split(" ");
      expect({ status, restarts, startedAt: JSON.parse(since!) }, def.name).toEqual({
        status: "running",
        restarts: "0",
        startedAt,
      });
    }
    const client = track(new ChatClient(webUrl));
    await client.connect();
    // A refusal here names its cause in the nodes' logs (the reply itself carries only a code, by design).
    const accepted = await client.chat("[demo:tokens=10] after Redis came back").catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await logsOf(gateway.container)}\n${await logsOf(ai.container)}`);
    });
    await expectExactAnswers([{ client, ...accepted }]);
  });
});

/** A container's last log lines (stdout and stderr), for a failure's message. */
async function logsOf(container: string, lines = 40): Promise<string> {
  const logs = await run("docker", ["logs", "--tail", String(lines), container]).then(
    (r) => `${r.stdout}${r.stderr}`,
    (e: unknown) => String(e),
  );
  return `${container}'s log:\n${logs}`;
}

/**
 * The AWS rendering as nginx 1.26.3 (the stand-in) loads it: exactly ` resolve` stripped from each upstream server
 * line (the parameter exists in open-source nginx since 1.27.3; the image's real base is nginx:1.28-alpine), nothing
 * else changed.
 */
function withoutResolve(conf: string, gateways: number): string {
  let stripped = 0;
  const result = conf.replace(/^(\s*server \S+ [^;#]*) resolve;/gm, (_, line: string) => {
    stripped++;
    return `${line};`;
  });
  expect(stripped, "one `resolve` per gateway").toBe(gateways);
  expect(result.length).toBe(conf.length - stripped * " resolve".length);
  expect(result).toContain(`resolver ${DOCKER_DNS} valid=10s ipv6=off;`);
  return result;
}
