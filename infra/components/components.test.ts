import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { images } from "../images";
import { renderNginxConf } from "../nginx/render";
import { mockEngine } from "../testing/pulumi-mocks";
import { deriveTopology, parseTopologyConfig, type Topology } from "../topology";

// Each component checks its arguments before it creates anything; these are the messages a wrong call gets.
// The components are imported after the mocks are installed.

let components: {
  network: typeof import("./network");
  redis: typeof import("./redis");
  kafka: typeof import("./kafka");
  ai: typeof import("./ai-node-group");
  gateways: typeof import("./gateway-group");
  nginx: typeof import("./nginx");
  web: typeof import("./web");
  appImage: typeof import("./app-image");
};

beforeAll(async () => {
  await mockEngine("local");
  components = {
    network: await import("./network"),
    redis: await import("./redis"),
    kafka: await import("./kafka"),
    ai: await import("./ai-node-group"),
    gateways: await import("./gateway-group"),
    nginx: await import("./nginx"),
    web: await import("./web"),
    appImage: await import("./app-image"),
  };
});

const topology = (gatewayNodes = 2, aiNodes = 2): Topology =>
  deriveTopology(parseTopologyConfig({ gatewayNodes, aiNodes }), {
    bindHost: "0.0.0.0",
    hostOf: (name) => name,
    gatewayPort: () => 8081,
    gatewayMetricsPort: () => 9081,
    aiPort: () => 7001,
    redisUrl: "redis://redis:6379",
    allowedOrigins: ["http://localhost:3000"],
  });
/** What every app image needs besides its app: the pinned bases and a platform. */
const build = { baseImages: { node: images.node, nginx: images.nginx }, platform: "linux/amd64" };
const placement = { networkName: "chatgrid", ipv4Address: "172.20.0.10", aliases: ["x"] };
const proxyConf = renderNginxConf(topology(), { errorLog: "/dev/stderr", accessLog: "off" });
const webConf = renderNginxConf(topology(), {
  errorLog: "/dev/stderr",
  accessLog: "off",
  webRoot: "/usr/share/nginx/html",
  runtimeDir: "/tmp",
});

describe("the network's address plan", () => {
  it("gives every service and up to 250 nodes per group distinct addresses in the /16, below Docker's own range", () => {
    const plan = components.network.addressPlan("172.20.0.0/16");
    expect(plan.gateway).toBe("172.20.0.1");
    expect(plan.dynamicRange).toBe("172.20.128.0/17");
    const all = [
      ...(["redis", "kafka", "nginx", "web"] as const).map((role) => plan.address({ role })),
      ...Array.from({ length: 250 }, (_, index) => plan.address({ role: "gateway", index })),
      ...Array.from({ length: 250 }, (_, index) => plan.address({ role: "ai", index })),
    ];
    expect(new Set(all).size).toBe(all.length);
    expect(all).not.toContain(plan.gateway);
    for (const ip of all) {
      const [a, b, c, d] = ip.split(".").map(Number);
      expect([a, b]).toEqual([172, 20]);
      expect(c).toBeLessThan(128);
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThan(255);
    }
  });

  it.each([
    ["172.20.0.0/24", /subnet must be an IPv4 \/16 written as a\.b\.0\.0\/16, got "172\.20\.0\.0\/24"/],
    ["10.300.0.0/16", /subnet must be an IPv4 \/16/],
  ])("rejects subnet %s", (subnet, message) => {
    expect(() => components.network.addressPlan(subnet)).toThrow(message);
  });

  it("rejects a node index outside the plan", () => {
    const plan = components.network.addressPlan("172.20.0.0/16");
    expect(() => plan.address({ role: "gateway", index: 250 })).toThrow("gateway index 250 is outside 0..249");
  });

  it("rejects a network name Docker would not take as a DNS label", () => {
    expect(() => new components.network.ChatgridNetwork("n", { name: "Chat Grid", subnet: "172.20.0.0/16" })).toThrow(
      'ChatgridNetwork: name "Chat Grid" is not a DNS label',
    );
  });
});

describe("argument checks", () => {
  it("Redis and Kafka take pinned images only", () => {
    expect(
      () =>
        new components.redis.RedisServer("r1", {
          containerName: "r1",
          image: "redis:7.4-alpine",
          network: placement,
          port: 6379,
          password: "a-password-long-enough",
          maxMemory: "256mb",
        }),
    ).toThrow(
      'RedisServer: image must be pinned by digest ([registry[:port]/]name:tag@sha256:<64 hex>), got "redis:7.4-alpine"',
    );
    // Another registry's pinned reference is a pinned image too (chatgrid:images, a mirror, an air-gapped registry).
    expect(
      () =>
        new components.redis.RedisServer("r0", {
          containerName: "r0",
          image: `127.0.0.1:5000/redis:7-standin@sha256:${"1".repeat(64)}`,
          network: placement,
          port: 6379,
          password: "a-password-long-enough",
          maxMemory: "256mb",
        }),
    ).not.toThrow();
    expect(
      () =>
        new components.kafka.KafkaBroker("k1", {
          containerName: "k1",
          image: "apache/kafka:latest",
          network: placement,
          port: 9092,
          hostListenerPort: 29092,
          partitions: 3,
        }),
    ).toThrow("KafkaBroker: image must be pinned by digest");
  });

  it("Redis's debug port publishes the Redis port; Kafka's publishes the host listener", () => {
    expect(
      () =>
        new components.redis.RedisServer("r2", {
          containerName: "r2",
          image: images.redis,
          network: placement,
          port: 6379,
          password: "a-password-long-enough",
          maxMemory: "256mb",
          debugPort: { internal: 6380, external: 6379, ip: "127.0.0.1" },
        }),
    ).toThrow("RedisServer: the debug port must publish the Redis port 6379");
    expect(
      () =>
        new components.kafka.KafkaBroker("k2", {
          containerName: "k2",
          image: images.kafka,
          network: placement,
          port: 9092,
          hostListenerPort: 29092,
          partitions: 3,
          debugPort: { internal: 9092, external: 9092, ip: "127.0.0.1" },
        }),
    ).toThrow("KafkaBroker: the debug port must publish the host listener 29092");
    expect(
      () =>
        new components.kafka.KafkaBroker("k3", {
          containerName: "k3",
          image: images.kafka,
          network: placement,
          port: 9092,
          hostListenerPort: 9092,
          partitions: 3,
        }),
    ).toThrow("KafkaBroker: port, hostListenerPort and the controller port 9093 must all differ");
  });

  it("Redis needs a memory size it takes and a real password (it always requires one)", () => {
    const base = { image: images.redis, network: placement, port: 6379, password: "a-password-long-enough" };
    expect(
      () => new components.redis.RedisServer("r3", { ...base, containerName: "r3", maxMemory: "256" }),
    ).not.toThrow();
    expect(() => new components.redis.RedisServer("r4", { ...base, containerName: "r4", maxMemory: "0" })).toThrow(
      'RedisServer: maxMemory: expected a size such as 256mb, 1gb or 64mb (a positive number with b/kb/mb/gb), got "0"',
    );
    expect(
      () =>
        new components.redis.RedisServer("r5", { ...base, containerName: "r5", maxMemory: "1gb", password: "short" }),
    ).toThrow("RedisServer: password must be at least 16 characters (use a GeneratedSecret)");
  });

  it("node groups need nodes of their role, one address each", () => {
    const t = topology(2, 2);
    const base = { image: "img", networkName: "chatgrid", containerPrefix: "chatgrid" };
    expect(() => new components.ai.AiNodeGroup("a1", { ...base, nodes: [], addresses: [] })).toThrow(
      "AiNodeGroup: needs at least one AI node",
    );
    expect(
      () =>
        new components.ai.AiNodeGroup("a2", { ...base, nodes: t.gateways, addresses: ["172.20.2.1", "172.20.2.2"] }),
    ).toThrow("AiNodeGroup: gateway-1 is a gateway node, not an AI node");
    expect(() => new components.ai.AiNodeGroup("a3", { ...base, nodes: t.aiNodes, addresses: ["172.20.2.1"] })).toThrow(
      "AiNodeGroup: 2 nodes but 1 addresses",
    );
    expect(() => new components.gateways.GatewayGroup("g1", { ...base, nodes: [], addresses: [] })).toThrow(
      "GatewayGroup: needs at least one gateway",
    );
    const lonely = t.gateways.map((g) => ({ ...g, env: { ...g.env, AI_SERVICE_URLS: "" } }));
    expect(
      () =>
        new components.gateways.GatewayGroup("g2", { ...base, nodes: lonely, addresses: ["172.20.1.1", "172.20.1.2"] }),
    ).toThrow("GatewayGroup: gateway-1 has neither AI_SERVICE_URLS nor AI_DISCOVERY=true");
  });

  it("nginx takes the renderer's output only, listening on every port it publishes", () => {
    const base = {
      containerName: "n1",
      image: images.nginx,
      network: placement,
      healthPort: 8080,
      confPath: "/tmp/chatgrid-test/entry.conf",
    };
    const ports = [{ internal: 8080, external: 8080, ip: "127.0.0.1" }];
    expect(() => new components.nginx.NginxProxy("n1", { ...base, nginxConf: "events {}\nhttp {}\n", ports })).toThrow(
      "NginxProxy: nginxConf must be the output of renderNginxConf (infra/nginx/render.ts)",
    );
    expect(
      () =>
        new components.nginx.NginxProxy("n2", {
          ...base,
          containerName: "n2",
          nginxConf: proxyConf,
          ports: [{ internal: 8443, external: 8443, ip: "127.0.0.1" }],
        }),
    ).toThrow("NginxProxy: nginxConf does not listen on 8443 (it listens on 8080, 3000, 8090)");
    expect(components.nginx.listenPorts("  listen 127.0.0.1:8080;\n  listen 3000;\n")).toEqual([8080, 3000]);
  });

  it("the web client's configuration serves the built client and keeps its files in /tmp (it runs as nginx, not root)", () => {
    const base = {
      containerName: "w1",
      image: "img",
      network: placement,
      port: { internal: 3000, external: 3000, ip: "127.0.0.1" },
      confPath: "/tmp/chatgrid-test/web.conf",
    };
    expect(() => new components.web.WebClient("w1", { ...base, nginxConf: proxyConf })).toThrow(
      "WebClient: nginxConf must serve the built client from /usr/share/nginx/html (render it with webRoot)",
    );
    const rootOwned = renderNginxConf(topology(), {
      errorLog: "/dev/stderr",
      accessLog: "off",
      webRoot: "/usr/share/nginx/html",
    });
    expect(() => new components.web.WebClient("w2", { ...base, containerName: "w2", nginxConf: rootOwned })).toThrow(
      "WebClient: nginxConf must keep its pid and temp files under /tmp (render it with runtimeDir)",
    );
    expect(
      () => new components.web.WebClient("w3", { ...base, containerName: "w3", nginxConf: webConf }),
    ).not.toThrow();
  });

  it("app images need their Dockerfile and a .dockerignore in the context", () => {
    const empty = mkdtempSync(join(tmpdir(), "chatgrid-context-"));
    try {
      expect(
        () =>
          new components.appImage.AppImage("i1", {
            app: "gateway",
            repoRoot: empty,
            imageName: "chatgrid/gateway:local",
            ...build,
          }),
      ).toThrow(`AppImage gateway: ${join(empty, "apps", "gateway", "Dockerfile")} does not exist`);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const repo = join(import.meta.dirname, "..", "..");
    expect(
      () => new components.appImage.AppImage("i2", { app: "ai", repoRoot: repo, imageName: "chatgrid/ai", ...build }),
    ).toThrow('AppImage ai: imageName must be repository:tag, got "chatgrid/ai"');
  });

  it("app images take pinned base images (any registry) and a linux/amd64 or linux/arm64 platform", () => {
    const repo = join(import.meta.dirname, "..", "..");
    const args = { app: "web" as const, repoRoot: repo, imageName: "chatgrid/web:local" };
    expect(
      () =>
        new components.appImage.AppImage("i3", {
          ...args,
          ...build,
          baseImages: { node: "node:20-alpine", nginx: images.nginx },
        }),
    ).toThrow(
      'AppImage web: baseImages.node: image must be pinned by digest ([registry[:port]/]name:tag@sha256:<64 hex>), got "node:20-alpine"',
    );
    expect(
      () =>
        new components.appImage.AppImage("i4", {
          ...args,
          ...build,
          baseImages: { ...build.baseImages, nginx: "nginx" },
        }),
    ).toThrow("AppImage web: baseImages.nginx: image must be pinned by digest");
    expect(() => new components.appImage.AppImage("i5", { ...args, ...build, platform: "linux/arm/v7" })).toThrow(
      'AppImage web: platform must be linux/amd64 or linux/arm64, got "linux/arm/v7"',
    );
    expect(
      () =>
        new components.appImage.AppImage("i6", {
          ...args,
          baseImages: { node: `127.0.0.1:5000/node:20-standin@sha256:${"4".repeat(64)}`, nginx: images.nginx },
          platform: "linux/arm64",
        }),
    ).not.toThrow();
  });
});
