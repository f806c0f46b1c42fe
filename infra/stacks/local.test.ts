import { existsSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { loadAiConfig } from "../../apps/ai/src/config";
import { loadGatewayConfig } from "../../apps/gateway/src/config";
import { baseImageBuildArgs, images, PINNED_IMAGE } from "../images";
import { renderNginxConf } from "../nginx/render";
import {
  fakeImageId,
  fakeSecret,
  graphDiff,
  mockEngine,
  type RegisteredResource,
  resolved,
} from "../testing/pulumi-mocks";
import { deriveTopology, parseTopologyConfig, type Topology } from "../topology";
import { hostPlatform } from "./config";

// The program is imported only after the mocks are installed (a static import would build nothing under test).

const T = {
  network: "docker:index/network:Network",
  volume: "docker:index/volume:Volume",
  remoteImage: "docker:index/remoteImage:RemoteImage",
  image: "docker:index/image:Image",
  container: "docker:index/container:Container",
  secret: "pulumi-nodejs:dynamic/chatgrid:GeneratedSecret",
  hostFile: "pulumi-nodejs:dynamic/chatgrid:HostFile",
} as const;

/** What the mocked GeneratedSecrets "draw" (infra/testing/pulumi-mocks.ts): the values to look for in the graph. */
const REDIS_PASSWORD = fakeSecret("chatgrid-redis-password");
const CLUSTER_SECRET = fakeSecret("chatgrid-cluster-secret");
/** The environment the stack adds to every gateway and AI node on top of the topology's. */
const NODE_SECRETS = { REDIS_PASSWORD, CLUSTER_SECRET };

const REPO = join(import.meta.dirname, "..", "..");

interface Graph {
  resources: RegisteredResource[];
  outputs: Record<string, unknown>;
  /** Whether each output is a Pulumi secret. */
  secretOutputs: Record<string, boolean>;
  of(type: string): RegisteredResource[];
  container(name: string): RegisteredResource;
}

/** Builds the stack from raw `chatgrid:` values (as Pulumi hands them over) on a fresh mocked engine. */
async function buildGraph(raw: Record<string, string>): Promise<Graph> {
  const engine = await mockEngine("local");
  const { parseStackConfig } = await import("./config");
  const { buildLocalStack } = await import("./local");
  const stack = buildLocalStack(parseStackConfig(raw));
  const containers = [
    stack.redis.container,
    ...(stack.kafka ? [stack.kafka.container] : []),
    ...stack.aiNodes.containers,
    ...stack.gateways.containers,
    stack.nginx.container,
    stack.web.container,
  ];
  await Promise.all(containers.map((c) => resolved(c.id)));
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  const secretOutputs: Record<string, boolean> = {};
  for (const [key, value] of Object.entries(stack.outputs)) {
    secretOutputs[key] = pulumi.Output.isInstance(value) ? await pulumi.isSecret(value) : false;
  }
  return {
    resources: engine.resources,
    outputs: await resolved(stack.outputs as unknown as Record<string, unknown>),
    secretOutputs,
    of,
    container(name) {
      const found = of(T.container).find((c) => c.inputs.name === name);
      if (!found) throw new Error(`no container ${name}`);
      return found;
    },
  };
}

/** The Docker placement written out independently of the code under test: the contract of the issue. */
function expectedTopology(gatewayNodes: number, aiNodes: number, kafka = true): Topology {
  const config = parseTopologyConfig({ gatewayNodes, aiNodes, kafka: { enabled: kafka } });
  return deriveTopology(config, {
    bindHost: "0.0.0.0",
    hostOf: (name) => name,
    gatewayPort: () => 8081,
    gatewayMetricsPort: () => 9081,
    aiPort: () => 7001,
    redisUrl: "redis://redis:6379",
    kafkaBrokers: kafka ? "kafka:9092" : undefined,
    allowedOrigins: [
      "http://localhost:3000",
      "http://127.0.0.1:3000",
      "http://localhost:8080",
      "http://127.0.0.1:8080",
    ],
    aiDiscovery: "registry",
  });
}

/** The gateways' fixed addresses on the network (172.20.1.N), written out: what both nginx upstreams list. */
const gatewayAddresses = (n: number) => Array.from({ length: n }, (_, i) => `172.20.1.${i + 1}`);
/** The entry's rendering options in Docker, written out. */
const proxyOptions = (n: number) => ({
  errorLog: "/dev/stderr",
  accessLog: "off",
  workerProcesses: "auto" as const,
  upstreamAddresses: gatewayAddresses(n),
});

/** How a secret input reaches the engine: wrapped, so state and diffs never show it. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const isSecret = (value: unknown): value is { value: unknown } =>
  typeof value === "object" && value !== null && SECRET_SIG in value;
const unsecret = (value: unknown): unknown => (isSecret(value) ? value.value : value);
/** Inputs with every secret replaced by "[secret]": what the state and `pulumi preview` show in plain text. */
const plainText = (value: unknown): unknown => {
  if (isSecret(value)) return "[secret]";
  if (Array.isArray(value)) return value.map(plainText);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainText(v)]));
  }
  return value;
};
/** Every secret-wrapped value in the inputs, unwrapped. */
const secretsIn = (value: unknown): unknown[] => {
  if (isSecret(value)) return [value.value];
  if (Array.isArray(value)) return value.flatMap(secretsIn);
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(secretsIn);
  return [];
};

const envOf = (container: RegisteredResource): Record<string, string> =>
  Object.fromEntries(
    ((unsecret(container.inputs.envs) as string[] | undefined) ?? []).map((line) => {
      const eq = line.indexOf("=");
      return [line.slice(0, eq), line.slice(eq + 1)];
    }),
  );

interface Attachment {
  name: string;
  aliases: string[];
  ipv4Address: string;
}
const attachments = (c: RegisteredResource) => c.inputs.networksAdvanced as Attachment[];
const publishedPorts = (c: RegisteredResource) =>
  ((c.inputs.ports as { internal: number; external: number; ip: string }[] | undefined) ?? []).map((p) => ({
    internal: p.internal,
    external: p.external,
    ip: p.ip,
  }));
/**
 * The configuration an nginx container runs: a HostFile in the stack's own directory on the Docker host, bind-mounted
 * read-only at /etc/chatgrid and followed in place by the container's entrypoint (no upload: a new file would
 * replace the container, and the entry would stop answering while it is recreated).
 */
function liveConf(graph: Graph, containerName: string): string {
  const container = graph.container(containerName);
  const file = graph.of(T.hostFile).find((r) => r.name === `${containerName}-conf`);
  if (!file) throw new Error(`no HostFile ${containerName}-conf`);
  const fileName = containerName === "chatgrid-nginx" ? "entry.conf" : "web.conf";
  const dir = join(REPO, ".chatgrid", "docker", "local", "nginx");
  expect(file.inputs.path).toBe(join(dir, fileName));
  expect(container.inputs.uploads ?? []).toEqual([]);
  expect(container.inputs.volumes).toEqual([{ hostPath: dir, containerPath: "/etc/chatgrid", readOnly: true }]);
  const entrypoint = container.inputs.entrypoints as string[];
  expect(entrypoint.slice(0, 2)).toEqual(["sh", "-c"]);
  expect(entrypoint[2]).toContain(`conf=/etc/chatgrid/${fileName}\n`);
  return file.inputs.content as string;
}
const ipToNumber = (ip: string) => ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);

const shapes = [
  { gatewayNodes: 1, aiNodes: 1, total: 28 },
  { gatewayNodes: 3, aiNodes: 3, total: 32 },
  { gatewayNodes: 5, aiNodes: 2, total: 33 },
];

describe.each(shapes)(
  "stack local, $gatewayNodes gateways + $aiNodes AI nodes (defaults otherwise)",
  ({ gatewayNodes: n, aiNodes: m, total }) => {
    let graph: Graph;
    const gatewayNames = Array.from({ length: n }, (_, i) => `gateway-${i + 1}`);
    const aiNames = Array.from({ length: m }, (_, i) => `ai-${i + 1}`);
    const topology = expectedTopology(n, m);

    it("builds", async () => {
      graph = await buildGraph({ gatewayNodes: String(n), aiNodes: String(m) });
    });

    it(`registers ${total} resources: these types, these counts`, () => {
      const counts: Record<string, number> = {};
      for (const r of graph.resources) counts[r.type] = (counts[r.type] ?? 0) + 1;
      expect(counts).toEqual({
        "chatgrid:docker:Network": 1,
        "chatgrid:docker:AppImage": 3,
        "chatgrid:docker:Redis": 1,
        "chatgrid:docker:Kafka": 1,
        "chatgrid:docker:AiNodeGroup": 1,
        "chatgrid:docker:GatewayGroup": 1,
        "chatgrid:docker:Nginx": 1,
        "chatgrid:docker:Web": 1,
        [T.network]: 1,
        [T.volume]: 1,
        [T.remoteImage]: 3,
        [T.image]: 3,
        // redis, kafka, nginx, web, and one per node
        [T.container]: 4 + n + m,
        // Redis's password and the nodes' CLUSTER_SECRET
        [T.secret]: 2,
        // nginx's and web's configuration files on the host
        [T.hostFile]: 2,
      });
      expect(graph.resources).toHaveLength(total);
      expect(graph.of(T.container).map((c) => c.inputs.name)).toEqual(
        expect.arrayContaining([
          "chatgrid-redis",
          "chatgrid-kafka",
          "chatgrid-nginx",
          "chatgrid-web",
          ...gatewayNames.map((g) => `chatgrid-${g}`),
          ...aiNames.map((a) => `chatgrid-${a}`),
        ]),
      );
    });

    it("every Docker resource is a child of a chatgrid component; components and the two secrets sit at the stack's root", () => {
      for (const r of graph.resources) {
        const chain = r.urn.split("::")[2]!.split("$");
        if (r.type === T.secret) {
          expect(chain, r.name).toEqual([T.secret]);
        } else if (r.custom) {
          expect(chain, r.name).toHaveLength(2);
          expect(chain[0], r.name).toMatch(/^chatgrid:docker:/);
        } else {
          expect(chain, r.name).toEqual([r.type]);
        }
      }
      const parentOf = (name: string) =>
        graph.resources
          .find((r) => r.name === name)!
          .urn.split("::")[2]!
          .split("$")[0];
      expect(parentOf("chatgrid-gateway-1")).toBe("chatgrid:docker:GatewayGroup");
      expect(parentOf("chatgrid-ai-1")).toBe("chatgrid:docker:AiNodeGroup");
      expect(parentOf("chatgrid-redis-data")).toBe("chatgrid:docker:Redis");
      expect(parentOf("chatgrid-nginx")).toBe("chatgrid:docker:Nginx");
    });

    it("the network is a bridge on 172.20.0.0/16; Docker's own allocations stay in the upper half", () => {
      const [network] = graph.of(T.network);
      expect(network!.inputs).toMatchObject({
        name: "chatgrid",
        driver: "bridge",
        ipamConfigs: [{ subnet: "172.20.0.0/16", gateway: "172.20.0.1", ipRange: "172.20.128.0/17" }],
      });
    });

    it("every container is on the network with its topology name as alias and its own fixed address", () => {
      const expectedAliases: Record<string, string> = {
        "chatgrid-redis": "redis",
        "chatgrid-kafka": "kafka",
        "chatgrid-nginx": "nginx",
        "chatgrid-web": "web",
        ...Object.fromEntries([...gatewayNames, ...aiNames].map((node) => [`chatgrid-${node}`, node])),
      };
      const addresses = new Set<string>();
      for (const c of graph.of(T.container)) {
        const [attachment, ...more] = attachments(c);
        expect(more, String(c.inputs.name)).toEqual([]);
        expect(attachment!.name).toBe("chatgrid");
        expect(attachment!.aliases).toEqual([expectedAliases[c.inputs.name as string]]);
        const ip = ipToNumber(attachment!.ipv4Address);
        expect(ip).toBeGreaterThan(ipToNumber("172.20.0.1"));
        expect(ip).toBeLessThan(ipToNumber("172.20.128.0"));
        addresses.add(attachment!.ipv4Address);
      }
      expect(addresses.size).toBe(graph.of(T.container).length);
      gatewayNames.forEach((g, i) => {
        expect(attachments(graph.container(`chatgrid-${g}`))[0]!.ipv4Address).toBe(`172.20.1.${i + 1}`);
      });
      aiNames.forEach((a, i) => {
        expect(attachments(graph.container(`chatgrid-${a}`))[0]!.ipv4Address).toBe(`172.20.2.${i + 1}`);
      });
    });

    it("publishes only nginx 8080 + 8090 and web 3000, on 127.0.0.1: debug ports are off by default", () => {
      for (const node of [...gatewayNames, ...aiNames]) {
        expect(publishedPorts(graph.container(`chatgrid-${node}`)), node).toEqual([]);
      }
      expect(publishedPorts(graph.container("chatgrid-nginx"))).toEqual([
        { internal: 8080, external: 8080, ip: "127.0.0.1" },
        { internal: 8090, external: 8090, ip: "127.0.0.1" },
      ]);
      expect(publishedPorts(graph.container("chatgrid-web"))).toEqual([
        { internal: 3000, external: 3000, ip: "127.0.0.1" },
      ]);
      expect(publishedPorts(graph.container("chatgrid-redis"))).toEqual([]);
      expect(publishedPorts(graph.container("chatgrid-kafka"))).toEqual([]);
      const all = graph.of(T.container).flatMap((c) => publishedPorts(c).map((p) => p.external));
      expect(all.sort()).toEqual([3000, 8080, 8090]);
    });

    it("nginx gets exactly the renderer's output for this topology, every gateway by its fixed address, in a file it follows in place", () => {
      const conf = liveConf(graph, "chatgrid-nginx");
      expect(conf).toBe(renderNginxConf(topology, proxyOptions(n)));
      // Addresses, not names: nginx needs no DNS to load the file, so it starts with any gateway down.
      const servers = [...conf.matchAll(/^\s*server (\S+) max_fails=2 fail_timeout=5s;\s+# (\S+)$/gm)];
      expect(servers.map((s) => s[1])).toEqual(gatewayAddresses(n).map((a) => `${a}:8081`));
      expect(servers.map((s) => s[2])).toEqual(gatewayNames);
      // The same addresses the gateway containers hold.
      expect(gatewayNames.map((g) => attachments(graph.container(`chatgrid-${g}`))[0]!.ipv4Address)).toEqual(
        gatewayAddresses(n),
      );
      expect(conf).toContain("ip_hash;");
      expect(conf).not.toMatch(/^pid /m);
      expect(conf).not.toMatch(/^user /m);
      expect(conf).toMatch(/listen 8080;/);
    });

    it("the web container gets the same renderer's output with the web root and /tmp runtime, every gateway too", () => {
      const conf = liveConf(graph, "chatgrid-web");
      expect(conf).toBe(
        renderNginxConf(topology, {
          ...proxyOptions(n),
          webRoot: "/usr/share/nginx/html",
          runtimeDir: "/tmp",
        }),
      );
      const servers = [...conf.matchAll(/^\s*server (\S+) max_fails/gm)].map((s) => s[1]);
      expect(servers).toEqual(gatewayAddresses(n).map((a) => `${a}:8081`));
      // The routing is the entry's: only the housekeeping and the web root differ.
      const routing = (text: string) =>
        text
          .split("\n")
          .filter((l) => l.trim() !== "" && !/^(pid |\s*\w+_temp_path )/.test(l))
          .join("\n")
          .replace(
            / {4}root \/usr\/share\/nginx\/html;\n {4}location \/ \{[\s\S]*? {4}location \/assets\/ \{[\s\S]*?\n {4}\}/g,
            "WEB",
          )
          .replace(/ {4}location \/ \{\n\s+default_type text\/plain;\n\s+return 503[^\n]*\n {4}\}/g, "WEB");
      expect(routing(conf)).toBe(routing(liveConf(graph, "chatgrid-nginx")));
    });

    it("each gateway's environment is its topology environment plus both secrets: AI nodes from the registry, Redis and Kafka", () => {
      gatewayNames.forEach((g, i) => {
        const container = graph.container(`chatgrid-${g}`);
        const env = envOf(container);
        expect(env).toEqual({ ...topology.gateways[i]!.env, ...NODE_SECRETS });
        // The secrets make the whole environment secret (hidden in state and in `pulumi preview`).
        expect(isSecret(container.inputs.envs)).toBe(true);
        expect(env).toMatchObject({ NODE_NAME: g, HOST: "0.0.0.0", PORT: "8081", METRICS_PORT: "9081" });
        // No AI node by name: gateways follow the signed registry, so scaling AI nodes leaves them as they are.
        expect(env.AI_SERVICE_URLS).toBeUndefined();
        expect(env.AI_DISCOVERY).toBe("true");
        expect(env.REDIS_URL).toBe("redis://redis:6379");
        expect(env.KAFKA_BROKERS).toBe("kafka:9092");
        // What the gateway itself makes of it.
        const config = loadGatewayConfig(env);
        expect(config.CLUSTER_SECRET).toBe(CLUSTER_SECRET);
        expect(config.REDIS_PASSWORD).toBe(REDIS_PASSWORD);
        expect(config.aiNodes).toEqual([]);
        expect(config.AI_DISCOVERY).toBe(true);
        expect(config.allowedOrigins).toContain("http://localhost:3000");
      });
    });

    it("each AI node's environment is its topology environment, and every address in any environment is a container here", () => {
      aiNames.forEach((a, i) => {
        const container = graph.container(`chatgrid-${a}`);
        const env = envOf(container);
        expect(env).toEqual({ ...topology.aiNodes[i]!.env, ...NODE_SECRETS });
        expect(isSecret(container.inputs.envs)).toBe(true);
        const config = loadAiConfig(env);
        expect(config.publicUrl).toBe(`http://${a}:7001`);
        expect(config.CLUSTER_SECRET).toBe(CLUSTER_SECRET);
      });
      const aliases = new Set(graph.of(T.container).flatMap((c) => attachments(c)[0]!.aliases));
      const listening: Record<string, string> = {
        redis: "6379",
        kafka: "9092",
        ...Object.fromEntries(aiNames.map((a) => [a, "7001"])),
      };
      for (const c of graph.of(T.container)) {
        const env = envOf(c);
        const targets = [
          ...(env.AI_SERVICE_URLS ?? "").split(",").filter(Boolean),
          env.REDIS_URL,
          env.KAFKA_BROKERS,
          env.PUBLIC_URL,
        ]
          .filter((t): t is string => Boolean(t))
          .map((t) => /^(?:[\w-]+=)?(?:\w+:\/\/)?([\w.-]+):(\d+)/.exec(t)!);
        for (const [, host, port] of targets) {
          expect(aliases.has(host!), `${c.inputs.name} points at ${host}`).toBe(true);
          expect(listening[host!], `${c.inputs.name} → ${host}:${port}`).toBe(port);
        }
      }
      const kafkaEnv = envOf(graph.container("chatgrid-kafka"));
      expect(kafkaEnv.KAFKA_ADVERTISED_LISTENERS).toContain("INTERNAL://kafka:9092");
      expect(kafkaEnv.KAFKA_LISTENERS).toContain("INTERNAL://0.0.0.0:9092");
      expect(aiPorts(graph, aiNames)).toEqual(aiNames.map(() => "7001"));
    });

    it("every container has a health check, the restart policy, and makes `pulumi up` wait until healthy", () => {
      for (const c of graph.of(T.container)) {
        const check = c.inputs.healthcheck as Record<string, unknown>;
        const tests = check.tests as string[];
        expect(["CMD", "CMD-SHELL"], String(c.inputs.name)).toContain(tests[0]);
        expect(tests.length).toBeGreaterThan(1);
        expect(check.interval).toMatch(/^\d+s$/);
        expect(check.timeout).toMatch(/^\d+s$/);
        expect(check.retries).toBeGreaterThan(0);
        expect(c.inputs.restart).toBe("unless-stopped");
        expect(c.inputs.wait).toBe(true);
        expect(c.inputs.waitTimeout).toBeGreaterThanOrEqual(60);
        expect(c.inputs.logOpts).toEqual({ "max-size": "10m", "max-file": "3" });
      }
      const health = (name: string) => (graph.container(name).inputs.healthcheck as { tests: string[] }).tests;
      expect(health("chatgrid-redis")).toEqual(["CMD-SHELL", "redis-cli -p 6379 ping | grep -q PONG"]);
      expect(health("chatgrid-nginx")).toEqual([
        "CMD",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        "http://127.0.0.1:8080/healthz",
      ]);
      expect(health("chatgrid-web")).toEqual(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/healthz"]);
      expect(health("chatgrid-gateway-1").join(" ")).toContain("process.env.METRICS_PORT");
      expect(health("chatgrid-ai-1").join(" ")).toContain("process.env.PORT");
    });

    it("pulled images are pinned by digest from infra/images.ts; app images are built from the repository", () => {
      const pulled = graph.of(T.remoteImage).map((i) => i.inputs.name as string);
      expect(pulled.sort()).toEqual([images.kafka, images.nginx, images.redis].sort());
      for (const name of pulled) expect(name).toMatch(PINNED_IMAGE);
      expect(graph.container("chatgrid-redis").inputs.image).toBe(fakeImageId("chatgrid-redis-image"));
      expect(graph.container("chatgrid-kafka").inputs.image).toBe(fakeImageId("chatgrid-kafka-image"));
      expect(graph.container("chatgrid-nginx").inputs.image).toBe(fakeImageId("chatgrid-nginx-image"));

      for (const app of ["gateway", "ai", "web"]) {
        const build = graph.of(T.image).find((i) => i.name === `chatgrid-${app}-image-build`)!;
        expect(build.inputs).toMatchObject({
          imageName: `chatgrid/${app}:local`,
          skipPush: true,
          build: {
            context: REPO,
            dockerfile: join(REPO, "apps", app, "Dockerfile"),
            builderVersion: "BuilderBuildKit",
            // This machine's architecture by default (chatgrid:platform otherwise): stated, so no preview warns.
            platform: hostPlatform(),
            args: baseImageBuildArgs(),
          },
        });
        expect(existsSync((build.inputs.build as { dockerfile: string }).dockerfile)).toBe(true);
      }
      // Containers run the built image's id: a rebuild replaces them, an unchanged build leaves them alone.
      for (const g of gatewayNames) {
        expect(graph.container(`chatgrid-${g}`).inputs.image).toBe(fakeImageId("chatgrid-gateway-image-build"));
      }
      for (const a of aiNames) {
        expect(graph.container(`chatgrid-${a}`).inputs.image).toBe(fakeImageId("chatgrid-ai-image-build"));
      }
      expect(graph.container("chatgrid-web").inputs.image).toBe(fakeImageId("chatgrid-web-image-build"));
    });

    it("Redis persists with AOF on the named volume, bounded at 256mb (volatile-lru), protected mode on", () => {
      const redis = graph.container("chatgrid-redis");
      expect(redis.inputs.command).toEqual([
        "redis-server",
        "/usr/local/etc/redis/auth.conf",
        "--port",
        "6379",
        "--protected-mode",
        "yes",
        "--maxmemory",
        "256mb",
        "--maxmemory-policy",
        "volatile-lru",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
        "/data",
      ]);
      const [volume] = graph.of(T.volume);
      expect(volume!.inputs.name).toBe("chatgrid-redis-data");
      expect(redis.inputs.volumes).toEqual([{ volumeName: "chatgrid-redis-data", containerPath: "/data" }]);
    });

    it("outputs the chat, API and metrics URLs, the node names, and both secrets as secrets", () => {
      expect(graph.outputs).toEqual({
        chatUrl: "http://localhost:3000",
        apiUrl: "http://localhost:8080",
        metricsUrl: "http://localhost:8090",
        nodeNames: { gateways: gatewayNames, aiNodes: aiNames },
        redisPassword: REDIS_PASSWORD,
        clusterSecret: CLUSTER_SECRET,
      });
      expect(graph.secretOutputs).toMatchObject({ redisPassword: true, clusterSecret: true });
    });
  },
);

/** The PORT each AI container listens on (its environment), in node order. */
function aiPorts(graph: Graph, aiNames: string[]): string[] {
  return aiNames.map((a) => envOf(graph.container(`chatgrid-${a}`)).PORT!);
}

describe("switches", () => {
  it("debugPorts true: Redis on 6379 and Kafka on 9092 too, on 127.0.0.1, and their URLs as outputs", async () => {
    const graph = await buildGraph({ debugPorts: "true" });
    expect(publishedPorts(graph.container("chatgrid-redis"))).toEqual([
      { internal: 6379, external: 6379, ip: "127.0.0.1" },
    ]);
    // Kafka's host listener (advertised as localhost:9092) is the one published.
    expect(publishedPorts(graph.container("chatgrid-kafka"))).toEqual([
      { internal: 29092, external: 9092, ip: "127.0.0.1" },
    ]);
    const all = graph.of(T.container).flatMap((c) => publishedPorts(c).map((p) => p.external));
    expect(all.sort()).toEqual([3000, 6379, 8080, 8090, 9092]);
    // The URL carries no password: redis-cli needs `pulumi stack output redisPassword --show-secrets`.
    expect(graph.outputs.redisUrl).toBe("redis://localhost:6379");
    expect(graph.outputs.kafkaBootstrap).toBe("localhost:9092");
  });

  it("debugPorts true on 0.0.0.0 needs debugPortsOnAllInterfaces true; then they are published on 0.0.0.0", async () => {
    const graph = await buildGraph({
      debugPorts: "true",
      publishAddress: "0.0.0.0",
      debugPortsOnAllInterfaces: "true",
    });
    expect(publishedPorts(graph.container("chatgrid-redis"))).toEqual([
      { internal: 6379, external: 6379, ip: "0.0.0.0" },
    ]);
    expect(publishedPorts(graph.container("chatgrid-kafka"))).toEqual([
      { internal: 29092, external: 9092, ip: "0.0.0.0" },
    ]);
    // Without debug ports, 0.0.0.0 needs nothing more (the entry is meant to be reachable).
    const entryOnly = await buildGraph({ publishAddress: "0.0.0.0", debugPortsOnAllInterfaces: "false" });
    expect(publishedPorts(entryOnly.container("chatgrid-redis"))).toEqual([]);
  });

  it("redisMaxMemory 1gb: Redis's bound, with volatile-lru", async () => {
    const graph = await buildGraph({ redisMaxMemory: "1gb" });
    const command = graph.container("chatgrid-redis").inputs.command as string[];
    expect(command.slice(command.indexOf("--maxmemory"), command.indexOf("--maxmemory") + 4)).toEqual([
      "--maxmemory",
      "1gb",
      "--maxmemory-policy",
      "volatile-lru",
    ]);
  });

  it("kafka false: no broker, no Kafka image, no KAFKA_* in any environment", async () => {
    const graph = await buildGraph({ kafka: "false", gatewayNodes: "2", aiNodes: "2" });
    expect(graph.resources.filter((r) => /kafka/i.test(r.type) || /kafka/.test(r.name))).toEqual([]);
    expect(graph.of(T.container)).toHaveLength(3 + 4);
    for (const c of graph.of(T.container)) {
      expect(
        Object.keys(envOf(c)).filter((k) => k.startsWith("KAFKA_")),
        String(c.inputs.name),
      ).toEqual([]);
    }
    expect(envOf(graph.container("chatgrid-gateway-1"))).toEqual({
      ...expectedTopology(2, 2, false).gateways[0]!.env,
      ...NODE_SECRETS,
    });
  });

  it("other host ports and 0.0.0.0: published onto nginx's fixed ports, allowed as origins, in the URLs", async () => {
    const graph = await buildGraph({
      httpPort: "9080",
      webPort: "4000",
      metricsPort: "9090",
      publishAddress: "0.0.0.0",
    });
    expect(publishedPorts(graph.container("chatgrid-nginx"))).toEqual([
      { internal: 8080, external: 9080, ip: "0.0.0.0" },
      { internal: 8090, external: 9090, ip: "0.0.0.0" },
    ]);
    expect(publishedPorts(graph.container("chatgrid-web"))).toEqual([
      { internal: 3000, external: 4000, ip: "0.0.0.0" },
    ]);
    // Inside, nginx is what it is with the defaults: host ports change the origins and nothing in the containers.
    const defaults = await buildGraph({});
    expect(liveConf(graph, "chatgrid-nginx")).toBe(liveConf(defaults, "chatgrid-nginx"));
    expect(liveConf(graph, "chatgrid-web")).toBe(liveConf(defaults, "chatgrid-web"));
    expect(envOf(graph.container("chatgrid-gateway-1")).ALLOWED_ORIGINS).toBe(
      "http://localhost:4000,http://127.0.0.1:4000,http://localhost:9080,http://127.0.0.1:9080",
    );
    expect(graph.outputs).toMatchObject({
      chatUrl: "http://localhost:4000",
      apiUrl: "http://localhost:9080",
      metricsUrl: "http://localhost:9090",
    });
  });

  it("a privileged host port (80) is only a published port: the unprivileged web container still binds 3000", async () => {
    const graph = await buildGraph({ httpPort: "80", webPort: "443" });
    expect(publishedPorts(graph.container("chatgrid-nginx"))[0]).toEqual({
      internal: 8080,
      external: 80,
      ip: "127.0.0.1",
    });
    expect(publishedPorts(graph.container("chatgrid-web"))).toEqual([
      { internal: 3000, external: 443, ip: "127.0.0.1" },
    ]);
    const listens = [...liveConf(graph, "chatgrid-web").matchAll(/listen (\d+);/g)].map((m) => Number(m[1]));
    expect(Math.min(...listens)).toBeGreaterThanOrEqual(1024);
  });

  it("provider openai: the API key reaches the AI nodes only, as a secret", async () => {
    const graph = await buildGraph({
      provider: "openai",
      openaiBaseUrl: "http://llm.internal:8000/v1",
      openaiModel: "tiny",
      openaiApiKey: "sk-test-123",
    });
    const ai = graph.container("chatgrid-ai-1");
    expect(envOf(ai)).toMatchObject({
      PROVIDER: "openai",
      OPENAI_BASE_URL: "http://llm.internal:8000/v1",
      OPENAI_MODEL: "tiny",
      OPENAI_API_KEY: "sk-test-123",
    });
    // The key makes the AI nodes' whole environment secret (hidden in state and in `pulumi preview`).
    expect(isSecret(ai.inputs.envs)).toBe(true);
    expect(envOf(graph.container("chatgrid-gateway-1")).OPENAI_API_KEY).toBeUndefined();
    expect(JSON.stringify(graph.container("chatgrid-gateway-1").inputs)).not.toContain("sk-test");
    expect(JSON.stringify(graph.container("chatgrid-nginx").inputs)).not.toContain("sk-test");
    expect(JSON.stringify(graph.outputs)).not.toContain("sk-test");
  });
});

describe("chatgrid:images: another registry's pinned references replace infra/images.ts, pulled and built alike", () => {
  const digest = (c: string) => `@sha256:${c.repeat(64)}`;
  /** What provision.sh's images.json looks like: a registry on 127.0.0.1 with a port. */
  const mirror = {
    redis: `127.0.0.1:5000/redis:7-standin${digest("1")}`,
    kafka: `127.0.0.1:5000/kafka:3.9.1-standin${digest("2")}`,
    nginx: `127.0.0.1:5000/nginx:1-standin${digest("3")}`,
    node: `127.0.0.1:5000/node:20-standin${digest("4")}`,
  };
  const pulledBy = (g: Graph) => Object.fromEntries(g.of(T.remoteImage).map((i) => [i.name, i.inputs.name as string]));
  const buildArgs = (g: Graph) =>
    Object.fromEntries(g.of(T.image).map((i) => [i.name, (i.inputs.build as { args: Record<string, string> }).args]));

  it("all four: every RemoteImage pulls the mirror's reference, every build gets its node and nginx", async () => {
    const graph = await buildGraph({ images: JSON.stringify(mirror) });
    expect(pulledBy(graph)).toEqual({
      "chatgrid-redis-image": mirror.redis,
      "chatgrid-kafka-image": mirror.kafka,
      "chatgrid-nginx-image": mirror.nginx,
    });
    const args = { NODE_IMAGE: mirror.node, NGINX_IMAGE: mirror.nginx };
    expect(buildArgs(graph)).toEqual({
      "chatgrid-gateway-image-build": args,
      "chatgrid-ai-image-build": args,
      "chatgrid-web-image-build": args,
    });
    // Nothing of Docker Hub's pins is left anywhere in the graph.
    const text = JSON.stringify(graph.resources.map((r) => r.inputs));
    for (const pin of Object.values(images)) expect(text).not.toContain(pin.split("@")[1]);
    // The containers still run what their RemoteImage pulled.
    expect(graph.container("chatgrid-redis").inputs.image).toBe(fakeImageId("chatgrid-redis-image"));
  });

  it("a subset: only those are replaced, the others keep the pins of infra/images.ts", async () => {
    const graph = await buildGraph({ images: JSON.stringify({ nginx: mirror.nginx, node: mirror.node }) });
    expect(pulledBy(graph)).toEqual({
      "chatgrid-redis-image": images.redis,
      "chatgrid-kafka-image": images.kafka,
      "chatgrid-nginx-image": mirror.nginx,
    });
    for (const args of Object.values(buildArgs(graph))) {
      expect(args).toEqual({ NODE_IMAGE: mirror.node, NGINX_IMAGE: mirror.nginx });
    }
    const redisOnly = await buildGraph({ images: JSON.stringify({ redis: mirror.redis }) });
    expect(pulledBy(redisOnly)["chatgrid-redis-image"]).toBe(mirror.redis);
    for (const args of Object.values(buildArgs(redisOnly))) expect(args).toEqual(baseImageBuildArgs(images));
  });

  it("an empty map is the pins; so is a Kafka replacement with Kafka off (nothing pulls it)", async () => {
    const none = await buildGraph({ images: "{}" });
    const defaults = await buildGraph({});
    expect(none.resources.map((r) => JSON.stringify(r.inputs))).toEqual(
      defaults.resources.map((r) => JSON.stringify(r.inputs)),
    );
    const noKafka = await buildGraph({ kafka: "false", images: JSON.stringify({ kafka: mirror.kafka }) });
    expect(Object.values(pulledBy(noKafka))).not.toContain(mirror.kafka);
  });

  it("other registry forms: a host name with a port, a dotted host, localhost", async () => {
    const { parseStackConfig } = await import("./config");
    for (const ref of [
      `registry:5000/redis:7${digest("a")}`,
      `mirror.example.com/library/redis:7.4-alpine${digest("b")}`,
      `localhost/redis:7${digest("c")}`,
    ]) {
      expect(parseStackConfig({ images: JSON.stringify({ redis: ref }) }).images.redis).toBe(ref);
    }
  });
});

describe("chatgrid:platform: every image build states it", () => {
  const platforms = (g: Graph) => g.of(T.image).map((i) => (i.inputs.build as { platform?: string }).platform);

  it("defaults to this machine's architecture (x64 → linux/amd64, arm64 → linux/arm64)", async () => {
    expect(hostPlatform("x64")).toBe("linux/amd64");
    expect(hostPlatform("arm64")).toBe("linux/arm64");
    expect(hostPlatform("ppc64")).toBeUndefined();
    const graph = await buildGraph({});
    expect(platforms(graph)).toEqual([hostPlatform(), hostPlatform(), hostPlatform()]);
    expect(hostPlatform()).toMatch(/^linux\/(amd64|arm64)$/);
  });

  it.each(["linux/amd64", "linux/arm64"])("%s: all three builds", async (platform) => {
    const graph = await buildGraph({ platform });
    expect(platforms(graph)).toEqual([platform, platform, platform]);
  });
});

describe("secrets: generated by Pulumi, held by Redis and the nodes, never plain text in the graph", () => {
  let graph: Graph;
  it("builds (with an OpenAI key too)", async () => {
    graph = await buildGraph({ provider: "openai", openaiApiKey: "sk-test-456" });
  });

  it("two GeneratedSecrets of 32 bytes at the stack's root, their value an additional secret output", () => {
    const secrets = graph.of(T.secret);
    expect(secrets.map((r) => r.name).sort()).toEqual(["chatgrid-cluster-secret", "chatgrid-redis-password"]);
    for (const r of secrets) {
      expect(r.inputs.byteLength, r.name).toBe(32);
      expect(r.secretOutputs, r.name).toEqual(["value"]);
    }
    expect(graph.secretOutputs).toMatchObject({ redisPassword: true, clusterSecret: true });
  });

  it("Redis gets the password in an uploaded conf and in REDISCLI_AUTH (its health check), both secret; not on its command line", () => {
    const redis = graph.container("chatgrid-redis");
    const uploads = unsecret(redis.inputs.uploads) as { file: string; content: unknown }[];
    expect(uploads.map((u) => u.file)).toEqual(["/usr/local/etc/redis/auth.conf"]);
    expect(isSecret(redis.inputs.uploads) || isSecret(uploads[0]!.content)).toBe(true);
    expect(unsecret(uploads[0]!.content)).toBe(`requirepass "${REDIS_PASSWORD}"\n`);
    expect(isSecret(redis.inputs.envs)).toBe(true);
    expect(envOf(redis)).toEqual({ REDISCLI_AUTH: REDIS_PASSWORD });
    const command = redis.inputs.command as string[];
    expect(command[1]).toBe("/usr/local/etc/redis/auth.conf");
    expect(command.join(" ")).not.toContain(REDIS_PASSWORD);
    expect(command.join(" ")).toContain("--protected-mode yes");
    expect(command.join(" ")).toContain("--maxmemory 256mb --maxmemory-policy volatile-lru");
    const health = (redis.inputs.healthcheck as { tests: string[] }).tests;
    expect(health).toEqual(["CMD-SHELL", "redis-cli -p 6379 ping | grep -q PONG"]);
  });

  it("neither secret appears in plain text in any resource's inputs; only secret-wrapped values hold them", () => {
    const holders = (value: string) =>
      graph.resources.filter((r) => JSON.stringify(secretsIn(r.inputs)).includes(value)).map((r) => r.name);
    for (const r of graph.resources) {
      const text = JSON.stringify(plainText(r.inputs));
      expect(text.includes(REDIS_PASSWORD), `${r.name} shows the Redis password`).toBe(false);
      expect(text.includes(CLUSTER_SECRET), `${r.name} shows the cluster secret`).toBe(false);
    }
    // Who holds them (as secrets): Redis and every node the password; only the nodes the cluster secret.
    const nodes = [
      "chatgrid-ai-1",
      "chatgrid-ai-2",
      "chatgrid-ai-3",
      "chatgrid-gateway-1",
      "chatgrid-gateway-2",
      "chatgrid-gateway-3",
    ];
    expect(holders(REDIS_PASSWORD).sort()).toEqual(["chatgrid-redis", ...nodes].sort());
    expect(holders(CLUSTER_SECRET).sort()).toEqual(nodes.sort());
    expect(holders("sk-test-456").sort()).toEqual(["chatgrid-ai-1", "chatgrid-ai-2", "chatgrid-ai-3"]);
  });
});

describe("scaling is configuration: what changes between two configurations", () => {
  const diff = (before: Graph, after: Graph) => graphDiff(before.resources, after.resources);

  it("gatewayNodes 3 → 5: two gateway containers more; nginx's and web's files get the new upstream, their containers stay", async () => {
    const before = await buildGraph({ gatewayNodes: "3", aiNodes: "3" });
    const after = await buildGraph({ gatewayNodes: "5", aiNodes: "3" });
    expect(diff(before, after)).toEqual({
      added: [`${T.container} chatgrid-gateway-4`, `${T.container} chatgrid-gateway-5`],
      removed: [],
      // The files only: nginx reloads them in place, so the entry is never recreated (docs/docker.md "Scaling").
      changed: [`${T.hostFile} chatgrid-nginx-conf`, `${T.hostFile} chatgrid-web-conf`],
    });
    expect(liveConf(after, "chatgrid-nginx")).toBe(renderNginxConf(expectedTopology(5, 3), proxyOptions(5)));
    // The three gateways that stay keep their addresses, so their lines in the upstream do not move.
    const upstream = (g: Graph) => liveConf(g, "chatgrid-nginx").match(/^\s*server \S+ max_fails.*$/gm);
    expect(upstream(after)!.slice(0, 3)).toEqual(upstream(before));
  });

  it("aiNodes 3 → 5: two AI containers more, and nothing else: no gateway is touched (they follow the registry)", async () => {
    const before = await buildGraph({ gatewayNodes: "3", aiNodes: "3" });
    const after = await buildGraph({ gatewayNodes: "3", aiNodes: "5" });
    expect(diff(before, after)).toEqual({
      added: [`${T.container} chatgrid-ai-4`, `${T.container} chatgrid-ai-5`],
      removed: [],
      changed: [],
    });
    // What the new nodes announce in the registry is an address every gateway reaches on the network.
    for (const i of [4, 5]) {
      const env = envOf(after.container(`chatgrid-ai-${i}`));
      expect(env.PUBLIC_URL).toBe(`http://ai-${i}:7001`);
      expect(attachments(after.container(`chatgrid-ai-${i}`))[0]!.aliases).toEqual([`ai-${i}`]);
      expect(loadAiConfig(env).REGISTER).toBe(true);
    }
  });
});

describe("chatgrid:images and chatgrid:platform: wrong values, the exact lines", () => {
  const d = `@sha256:${"a".repeat(64)}`;
  const pinned = "[registry[:port]/]name:tag@sha256:<64 hex>";
  it.each<{ raw: Record<string, string>; lines: string[] }>([
    {
      raw: { images: "redis:7" },
      lines: ['chatgrid:images: expected a JSON object (pulumi config set --path or a YAML map) (got "redis:7")'],
    },
    {
      raw: { images: '["redis"]' },
      lines: ['chatgrid:images: Invalid input: expected record, received array (got "[\\"redis\\"]")'],
    },
    {
      raw: { images: '{"redis":"redis:7.4-alpine"}' },
      lines: [`chatgrid:images.redis: expected a pinned reference ${pinned} (got "redis:7.4-alpine")`],
    },
    {
      raw: { images: JSON.stringify({ nginx: `http://127.0.0.1:5000/nginx:1${d}` }) },
      lines: [`chatgrid:images.nginx: expected a pinned reference ${pinned} (got "http://127.0.0.1:5000/nginx:1${d}")`],
    },
    {
      raw: { images: '{"node":20}' },
      lines: [`chatgrid:images.node: expected a pinned reference ${pinned} (got 20)`],
    },
    {
      raw: { images: JSON.stringify({ mongo: `mongo:7${d}`, kafka: "apache/kafka:latest" }) },
      lines: [
        `chatgrid:images.mongo: not an image of the stack (known: redis, kafka, nginx, node) (got "mongo:7${d}")`,
        `chatgrid:images.kafka: expected a pinned reference ${pinned} (got "apache/kafka:latest")`,
      ],
    },
    {
      raw: { platform: "linux/386" },
      lines: ['chatgrid:platform: expected one of linux/amd64, linux/arm64 (got "linux/386")'],
    },
  ])("$raw", async ({ raw, lines }) => {
    const engine = await mockEngine("local");
    const { parseStackConfig } = await import("./config");
    const { buildLocalStack } = await import("./local");
    let message = "";
    try {
      buildLocalStack(parseStackConfig(raw));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(
      `invalid chatgrid stack configuration:\n${lines.map((l) => `  ${l}`).join("\n")}\n` +
        "Change a value with: pulumi config set chatgrid:<key> <value>   (remove one: pulumi config rm chatgrid:<key>)",
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});

describe("invalid configurations fail before anything is created, naming the key and what it expects", () => {
  it.each<{ raw: Record<string, string>; line: string }>([
    { raw: { gatewayNodes: "0" }, line: 'chatgrid:gatewayNodes: at least 1 gateway node (got "0")' },
    { raw: { aiNodes: "65" }, line: 'chatgrid:aiNodes: at most 64 AI nodes (got "65")' },
    { raw: { gatewayNodes: "three" }, line: 'chatgrid:gatewayNodes: expected a whole number (got "three")' },
    { raw: { httpPort: "70000" }, line: "chatgrid:httpPort: Too big: expected number to be <=65535" },
    { raw: { debugPorts: "yes" }, line: 'chatgrid:debugPorts: expected true or false (got "yes")' },
    { raw: { kafka: "on" }, line: 'chatgrid:kafka: expected true or false (got "on")' },
    { raw: { provider: "claude" }, line: 'chatgrid:provider: Invalid option: expected one of "demo"|"openai"' },
    { raw: { publishAddress: "localhost" }, line: "chatgrid:publishAddress: expected an IPv4 address" },
    { raw: { webPort: "8080" }, line: "chatgrid:webPort: port 8080 is already published for httpPort" },
    {
      raw: { httpPort: "6379", debugPorts: "true" },
      line: "chatgrid:debugPorts (Redis): port 6379 is already published for httpPort",
    },
    {
      raw: { debugPorts: "true", publishAddress: "0.0.0.0" },
      line: "chatgrid:debugPorts: would publish Redis and Kafka on every interface (chatgrid:publishAddress is 0.0.0.0); set chatgrid:debugPortsOnAllInterfaces true to mean it, or turn chatgrid:debugPorts off",
    },
    {
      raw: { debugPorts: "true", publishAddress: "0.0.0.0", debugPortsOnAllInterfaces: "false" },
      line: "chatgrid:debugPorts: would publish Redis and Kafka on every interface",
    },
    {
      raw: { debugPorts: "true", publishAddress: "192.168.1.20" },
      line: "chatgrid:debugPorts: would publish Redis and Kafka beyond this machine (chatgrid:publishAddress is 192.168.1.20); set chatgrid:debugPortsOnAllInterfaces true to mean it, or turn chatgrid:debugPorts off",
    },
    {
      raw: { debugPortsOnAllInterfaces: "yes" },
      line: 'chatgrid:debugPortsOnAllInterfaces: expected true or false (got "yes")',
    },
    {
      raw: { redisMaxMemory: "lots" },
      line: 'chatgrid:redisMaxMemory: expected a size such as 256mb, 1gb or 64mb (a positive number with b/kb/mb/gb) (got "lots")',
    },
    { raw: { redisMaxMemory: "0" }, line: "chatgrid:redisMaxMemory: expected a size such as 256mb" },
    { raw: { provider: "openai" }, line: "chatgrid:provider: openai needs chatgrid:openaiApiKey" },
    { raw: { nodeEnv: '{"A":1}' }, line: "chatgrid:nodeEnv.A: Invalid input: expected string" },
    { raw: { gatewayNode: "5" }, line: "chatgrid:gatewayNode: not a chatgrid setting (known: gatewayNodes, aiNodes" },
  ])("$raw", async ({ raw, line }) => {
    const engine = await mockEngine("local");
    const { parseStackConfig } = await import("./config");
    const { buildLocalStack } = await import("./local");
    let message = "";
    try {
      buildLocalStack(parseStackConfig(raw));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^invalid chatgrid stack configuration:\n/);
    expect(
      message.split("\n").some((l) => l.trim().startsWith(line)),
      message,
    ).toBe(true);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it("names every problem at once", async () => {
    const { parseStackConfig } = await import("./config");
    expect(() => parseStackConfig({ gatewayNodes: "0", aiNodes: "x", debugPorts: "1" })).toThrow(
      /gatewayNodes: at least 1[\s\S]*aiNodes: expected a whole number[\s\S]*debugPorts: expected true or false/,
    );
  });
});
