import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { AiNodeGroup } from "../components/ai-node-group";
import { AppImage } from "../components/app-image";
import type { PublishedPort } from "../components/common";
import { GatewayGroup } from "../components/gateway-group";
import { GeneratedSecret } from "../components/generated-secret";
import { KafkaBroker } from "../components/kafka";
import { ChatgridNetwork } from "../components/network";
import { NginxProxy } from "../components/nginx";
import { RedisServer } from "../components/redis";
import { WEB_ROOT, WebClient } from "../components/web";
import { type NginxRenderOptions, renderNginxConf } from "../nginx/render";
import { deriveTopology, type Placement, type Topology, type TopologyConfig } from "../topology";
import { DEBUG_PORTS, type StackConfig } from "./config";

/** The repository root: the build context of the app images. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The Docker target's fixed choices: names, the network, and the ports inside it. */
export const DOCKER = {
  /** Container, network and volume names start with it; images are tagged `chatgrid/<app>:local`. */
  prefix: "chatgrid",
  subnet: "172.20.0.0/16",
  /** Inside the network every node has its own address, so every gateway uses the same ports, every AI node too. */
  ports: { gateway: 8081, gatewayMetrics: 9081, ai: 7001, redis: 6379, kafka: 9092, kafkaHostListener: 29092 },
  /**
   * What nginx listens on inside its containers, whatever the host ports are (they are published onto these): the
   * web container runs nginx unprivileged, so a host port below 1024 must not become a port it binds.
   */
  entryPorts: { httpPort: 8080, webPort: 3000, metricsPort: 8090 },
  hosts: { redis: "redis", kafka: "kafka", nginx: "nginx", web: "web" },
} as const;

/** The topology's placement in Docker: each node is reachable by its own name (a network alias). */
export function dockerPlacement(config: TopologyConfig): Placement {
  const origins = [config.webPort, config.httpPort].flatMap((port) => [
    `http://localhost:${port}`,
    `http://127.0.0.1:${port}`,
  ]);
  return {
    bindHost: "0.0.0.0",
    hostOf: (name) => name,
    gatewayPort: () => DOCKER.ports.gateway,
    gatewayMetricsPort: () => DOCKER.ports.gatewayMetrics,
    aiPort: () => DOCKER.ports.ai,
    redisUrl: `redis://${DOCKER.hosts.redis}:${DOCKER.ports.redis}`,
    kafkaBrokers: config.kafka.enabled ? `${DOCKER.hosts.kafka}:${DOCKER.ports.kafka}` : undefined,
    allowedOrigins: origins,
    // Gateways follow the AI nodes' heartbeats: scaling AI nodes replaces no gateway (no socket is dropped).
    aiDiscovery: "registry",
  };
}

/** nginx's housekeeping in the two nginx containers; the routing is the topology's, from the same renderer. */
export const NGINX_OPTIONS = {
  /** The official image as root: its default pid and temp paths, workers as nobody. */
  proxy: { errorLog: "/dev/stderr", accessLog: "off", workerProcesses: "auto" },
  /** The web image as the unprivileged nginx user: pid and temp files under /tmp, the built client as root. */
  web: { errorLog: "/dev/stderr", accessLog: "off", workerProcesses: "auto", webRoot: WEB_ROOT, runtimeDir: "/tmp" },
} as const satisfies Record<string, NginxRenderOptions>;

export interface LocalStackOutputs {
  /** The web client. */
  chatUrl: string;
  /** The public entry: REST under /api/, WebSocket at /ws/chat. */
  apiUrl: string;
  /** nginx stub_status. */
  metricsUrl: string;
  nodeNames: { gateways: string[]; aiNodes: string[] };
  /** Only when debug ports are published (the password is `redisPassword`). */
  redisUrl?: string;
  kafkaBootstrap?: string;
  /** Secrets: `pulumi stack output redisPassword --show-secrets` (redis-cli needs it with the debug ports). */
  redisPassword: pulumi.Output<string>;
  clusterSecret: pulumi.Output<string>;
}

export interface LocalStack {
  topology: Topology;
  network: ChatgridNetwork;
  images: Record<"gateway" | "ai" | "web", AppImage>;
  redis: RedisServer;
  /** Generated once, kept in the state as secrets: Redis's password and the nodes' CLUSTER_SECRET. */
  secrets: { redisPassword: GeneratedSecret; clusterSecret: GeneratedSecret };
  kafka?: KafkaBroker;
  aiNodes: AiNodeGroup;
  gateways: GatewayGroup;
  nginx: NginxProxy;
  web: WebClient;
  outputs: LocalStackOutputs;
}

/**
 * The whole seed topology in Docker, from a validated configuration: the network, Redis, Kafka (when enabled), the
 * three app images, M AI nodes, N gateways, nginx (the entry) and the web client. Node names, aliases and every
 * environment come from the topology model; both nginx configurations from the one renderer. Scaling is changing
 * `gatewayNodes` / `aiNodes`: the containers, the upstream and the gateways' AI list follow.
 */
export function buildLocalStack(config: StackConfig, options: { repoRoot?: string } = {}): LocalStack {
  const repoRoot = options.repoRoot ?? REPO_ROOT;
  // nginx's files live on the Docker host (the engine is local), one directory per stack, out of git.
  const confDir = join(repoRoot, ".chatgrid", "docker", pulumi.getStack(), "nginx");
  const { prefix, ports, hosts, entryPorts } = DOCKER;
  // The host's ports are the configuration's (origins, published ports, URLs); nginx's own are the fixed ones.
  const hostPorts = {
    httpPort: config.topology.httpPort,
    webPort: config.topology.webPort,
    metricsPort: config.topology.metricsPort,
  };
  const topology = deriveTopology({ ...config.topology, ...entryPorts }, dockerPlacement(config.topology));
  const publish = (internal: number, external = internal): PublishedPort => ({
    internal,
    external,
    ip: config.publishAddress,
  });

  const network = new ChatgridNetwork(prefix, { name: prefix, subnet: DOCKER.subnet });
  const on = (slot: Parameters<ChatgridNetwork["address"]>[0], alias: string) => ({
    networkName: network.networkName,
    ipv4Address: network.address(slot),
    aliases: [alias],
  });

  // The pins of infra/images.ts, or the stack's replacements (chatgrid:images): pulled, and the Dockerfiles' bases.
  const { images, platform } = config;
  const build = (app: "gateway" | "ai" | "web") =>
    new AppImage(`${prefix}-${app}-image`, {
      app,
      repoRoot,
      imageName: `${prefix}/${app}:local`,
      baseImages: { node: images.node, nginx: images.nginx },
      platform,
    });
  const appImages = { gateway: build("gateway"), ai: build("ai"), web: build("web") };

  // Drawn once by Pulumi at the first `up`, then kept: replacing them is a deliberate rotation (docs/docker.md).
  const secrets = {
    redisPassword: new GeneratedSecret(`${prefix}-redis-password`),
    clusterSecret: new GeneratedSecret(`${prefix}-cluster-secret`),
  };
  const nodeSecrets = { REDIS_PASSWORD: secrets.redisPassword.value, CLUSTER_SECRET: secrets.clusterSecret.value };

  const redis = new RedisServer(`${prefix}-redis`, {
    containerName: `${prefix}-redis`,
    image: images.redis,
    network: on({ role: "redis" }, hosts.redis),
    port: ports.redis,
    password: secrets.redisPassword.value,
    maxMemory: config.redisMaxMemory,
    debugPort: config.debugPorts ? publish(ports.redis, DEBUG_PORTS.redis) : undefined,
  });

  const kafka = config.topology.kafka.enabled
    ? new KafkaBroker(`${prefix}-kafka`, {
        containerName: `${prefix}-kafka`,
        image: images.kafka,
        network: on({ role: "kafka" }, hosts.kafka),
        port: ports.kafka,
        hostListenerPort: ports.kafkaHostListener,
        partitions: config.topology.kafka.partitions,
        debugPort: config.debugPorts ? publish(ports.kafkaHostListener, DEBUG_PORTS.kafka) : undefined,
      })
    : undefined;
  const backing = kafka ? [redis, kafka] : [redis];

  const aiNodes = new AiNodeGroup(
    `${prefix}-ai`,
    {
      nodes: topology.aiNodes,
      image: appImages.ai.ref,
      networkName: network.networkName,
      addresses: topology.aiNodes.map((_, index) => network.address({ role: "ai", index })),
      containerPrefix: prefix,
      secretEnv: {
        ...nodeSecrets,
        ...(config.openaiApiKey ? { OPENAI_API_KEY: pulumi.secret(config.openaiApiKey) } : {}),
      },
    },
    { dependsOn: backing },
  );

  // One fixed address per gateway: the gateways' containers get them, and both nginx upstreams name them (no DNS).
  const gatewayAddresses = topology.gateways.map((_, index) => network.address({ role: "gateway", index }));
  const gateways = new GatewayGroup(
    `${prefix}-gateways`,
    {
      nodes: topology.gateways,
      image: appImages.gateway.ref,
      networkName: network.networkName,
      addresses: gatewayAddresses,
      containerPrefix: prefix,
      secretEnv: nodeSecrets,
    },
    { dependsOn: [...backing, aiNodes] },
  );

  // The upstreams list the gateways' fixed addresses, so nginx starts with any of them down; on a first `up` both
  // nginx containers still come after the gateways, so the entry never opens onto nothing.
  const nginx = new NginxProxy(
    `${prefix}-nginx`,
    {
      containerName: `${prefix}-nginx`,
      image: images.nginx,
      network: on({ role: "nginx" }, hosts.nginx),
      nginxConf: renderNginxConf(topology, { ...NGINX_OPTIONS.proxy, upstreamAddresses: gatewayAddresses }),
      confPath: join(confDir, "entry.conf"),
      healthPort: entryPorts.httpPort,
      ports: [publish(entryPorts.httpPort, hostPorts.httpPort), publish(entryPorts.metricsPort, hostPorts.metricsPort)],
    },
    { dependsOn: [gateways] },
  );

  const web = new WebClient(
    `${prefix}-web`,
    {
      containerName: `${prefix}-web`,
      image: appImages.web.ref,
      network: on({ role: "web" }, hosts.web),
      nginxConf: renderNginxConf(topology, { ...NGINX_OPTIONS.web, upstreamAddresses: gatewayAddresses }),
      confPath: join(confDir, "web.conf"),
      port: publish(entryPorts.webPort, hostPorts.webPort),
    },
    { dependsOn: [gateways] },
  );

  const host =
    config.publishAddress === "0.0.0.0" || config.publishAddress === "127.0.0.1" ? "localhost" : config.publishAddress;
  const outputs: LocalStackOutputs = {
    chatUrl: `http://${host}:${hostPorts.webPort}`,
    apiUrl: `http://${host}:${hostPorts.httpPort}`,
    metricsUrl: `http://${host}:${hostPorts.metricsPort}`,
    nodeNames: { gateways: gateways.nodeNames, aiNodes: aiNodes.nodeNames },
    redisPassword: secrets.redisPassword.value,
    clusterSecret: secrets.clusterSecret.value,
    ...(config.debugPorts
      ? {
          redisUrl: `redis://${host}:${DEBUG_PORTS.redis}`,
          ...(kafka ? { kafkaBootstrap: `${host}:${DEBUG_PORTS.kafka}` } : {}),
        }
      : {}),
  };
  return { topology, network, images: appImages, redis, secrets, kafka, aiNodes, gateways, nginx, web, outputs };
}
