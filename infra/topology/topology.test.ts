import { describe, expect, it } from "vitest";
import { loadAiConfig } from "../../apps/ai/src/config";
import { loadGatewayConfig } from "../../apps/gateway/src/config";
import { parseTopologyConfig, type TopologyConfigInput } from "./config";
import { aiName, deriveTopology, gatewayName, type Placement } from "./topology";

/** A container-like placement: every node has its own host name; ports are distinct per role and index. */
const fakePlacement = (): Placement => ({
  bindHost: "0.0.0.0",
  hostOf: (name) => `${name}.internal`,
  gatewayPort: (index) => 4000 + index,
  gatewayMetricsPort: (index) => 5000 + index,
  aiPort: (index) => 6000 + index,
  redisUrl: "redis://redis.internal:6379",
  allowedOrigins: ["http://web.example:3000", "http://localhost:3000"],
});

const derive = (input: TopologyConfigInput, placement: Placement = fakePlacement()) =>
  deriveTopology(parseTopologyConfig(input), placement);

const errorOf = (input: unknown): string => {
  try {
    parseTopologyConfig(input);
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return (error as Error).message;
  }
  throw new Error(`parseTopologyConfig accepted ${JSON.stringify(input)}`);
};

describe("parseTopologyConfig", () => {
  it("fills the defaults: 3 gateways, 3 AI nodes, ports 8080/3000/8090, the demo model", () => {
    const config = parseTopologyConfig({});
    expect(config.gatewayNodes).toBe(3);
    expect(config.aiNodes).toBe(3);
    expect(config.httpPort).toBe(8080);
    expect(config.webPort).toBe(3000);
    expect(config.metricsPort).toBe(8090);
    expect(config.provider.kind).toBe("demo");
    expect(config.provider.demoTokensPerSecond).toBe(20);
    expect(config.provider.demoMaxTokens).toBe(60);
    expect(config.apiRatePerSecond).toBe(20);
    expect(config.apiBurst).toBe(40);
    expect(config.nodeEnv).toEqual({});
  });

  it("keeps given values and fills only what is missing (also inside provider)", () => {
    const config = parseTopologyConfig({ gatewayNodes: 5, aiNodes: 2, httpPort: 9000, provider: { demoMaxTokens: 7 } });
    expect(config).toMatchObject({ gatewayNodes: 5, aiNodes: 2, httpPort: 9000, webPort: 3000, metricsPort: 8090 });
    expect(config.provider).toEqual({ kind: "demo", demoTokensPerSecond: 20, demoMaxTokens: 7 });
  });

  it.each([
    { name: "gatewayNodes 0", input: { gatewayNodes: 0 }, path: "gatewayNodes", expected: /at least 1/ },
    { name: "aiNodes 65", input: { aiNodes: 65 }, path: "aiNodes", expected: /at most 64/ },
    { name: "httpPort 70000", input: { httpPort: 70_000 }, path: "httpPort", expected: /65535/ },
    { name: 'gatewayNodes "3" (a string)', input: { gatewayNodes: "3" }, path: "gatewayNodes", expected: /number/ },
    {
      name: 'provider.kind "foo"',
      input: { provider: { kind: "foo" } },
      path: "provider.kind",
      expected: /"demo".*"openai"/,
    },
  ])("rejects $name with an Error naming the key and what it expects", ({ input, path, expected }) => {
    const message = errorOf(input);
    expect(message).toContain("invalid chatgrid topology configuration");
    const line = message.split("\n").find((l) => l.trim().startsWith(`${path}:`));
    expect(line, `no line for ${path} in:\n${message}`).toBeDefined();
    expect(line).toMatch(expected);
  });

  it("names every invalid key at once", () => {
    const message = errorOf({ gatewayNodes: 0, webPort: 0, provider: { kind: "foo" } });
    expect(message).toMatch(/^\s+gatewayNodes:/m);
    expect(message).toMatch(/^\s+webPort:/m);
    expect(message).toMatch(/^\s+provider\.kind:/m);
  });

  it("rejects a non-string nodeEnv value, naming its key", () => {
    expect(errorOf({ nodeEnv: { FOO: 1 } })).toMatch(/^\s+nodeEnv\.FOO:/m);
  });
});

describe("deriveTopology", () => {
  const cases = [
    { gatewayNodes: 1, aiNodes: 1 },
    { gatewayNodes: 3, aiNodes: 3 },
    { gatewayNodes: 5, aiNodes: 2 },
  ];

  it.each(cases)("$gatewayNodes gateways + $aiNodes AI nodes: names, addresses, ports", ({ gatewayNodes, aiNodes }) => {
    const topology = derive({ gatewayNodes, aiNodes });
    expect(topology.gateways.map((g) => g.name)).toEqual(
      Array.from({ length: gatewayNodes }, (_, i) => `gateway-${i + 1}`),
    );
    expect(topology.aiNodes.map((n) => n.name)).toEqual(Array.from({ length: aiNodes }, (_, i) => `ai-${i + 1}`));
    expect(topology.redisUrl).toBe("redis://redis.internal:6379");
    expect(topology.config.gatewayNodes).toBe(gatewayNodes);
    topology.gateways.forEach((g, i) => {
      expect(g.name).toBe(gatewayName(i));
      expect(g.role).toBe("gateway");
      expect(g.host).toBe(`gateway-${i + 1}.internal`);
      expect(g.port).toBe(4000 + i);
      expect(g.metricsPort).toBe(5000 + i);
      expect(g.url).toBe(`http://gateway-${i + 1}.internal:${4000 + i}`);
    });
    topology.aiNodes.forEach((n, i) => {
      expect(n.name).toBe(aiName(i));
      expect(n.role).toBe("ai");
      expect(n.host).toBe(`ai-${i + 1}.internal`);
      expect(n.port).toBe(6000 + i);
      expect(n.metricsPort).toBe(6000 + i);
      expect(n.url).toBe(`http://ai-${i + 1}.internal:${6000 + i}`);
    });
  });

  it.each(cases)(
    "$gatewayNodes gateways + $aiNodes AI nodes: every gateway's environment",
    ({ gatewayNodes, aiNodes }) => {
      const topology = derive({ gatewayNodes, aiNodes });
      const expectedAiUrls = Array.from(
        { length: aiNodes },
        (_, i) => `ai-${i + 1}=http://ai-${i + 1}.internal:${6000 + i}`,
      ).join(",");
      topology.gateways.forEach((g, i) => {
        expect(g.env.NODE_NAME).toBe(`gateway-${i + 1}`);
        expect(g.env.HOST).toBe("0.0.0.0");
        expect(g.env.PORT).toBe(String(4000 + i));
        expect(g.env.METRICS_PORT).toBe(String(5000 + i));
        expect(g.env.REDIS_URL).toBe("redis://redis.internal:6379");
        expect(g.env.AI_SERVICE_URLS).toBe(expectedAiUrls);
        expect(g.env.ALLOWED_ORIGINS).toBe("http://web.example:3000,http://localhost:3000");
      });
    },
  );

  it.each(cases)(
    "$gatewayNodes gateways + $aiNodes AI nodes: every AI node's environment",
    ({ gatewayNodes, aiNodes }) => {
      const topology = derive({
        gatewayNodes,
        aiNodes,
        provider: { demoTokensPerSecond: 33, demoMaxTokens: 9 },
      });
      topology.aiNodes.forEach((n, i) => {
        expect(n.env).toMatchObject({
          NODE_NAME: `ai-${i + 1}`,
          HOST: "0.0.0.0",
          PORT: String(6000 + i),
          PUBLIC_URL: `http://ai-${i + 1}.internal:${6000 + i}`,
          REDIS_URL: "redis://redis.internal:6379",
          PROVIDER: "demo",
          DEMO_TOKENS_PER_SECOND: "33",
          DEMO_MAX_TOKENS: "9",
        });
        expect(n.env.OPENAI_BASE_URL).toBeUndefined();
        expect(n.env.OPENAI_MODEL).toBeUndefined();
      });
    },
  );

  it("passes the openai provider settings to AI nodes only", () => {
    const topology = derive({
      gatewayNodes: 2,
      aiNodes: 2,
      provider: { kind: "openai", openaiBaseUrl: "http://llm.internal:8000/v1", openaiModel: "tiny" },
    });
    for (const n of topology.aiNodes) {
      expect(n.env.PROVIDER).toBe("openai");
      expect(n.env.OPENAI_BASE_URL).toBe("http://llm.internal:8000/v1");
      expect(n.env.OPENAI_MODEL).toBe("tiny");
    }
    for (const g of topology.gateways) {
      expect(g.env.PROVIDER).toBeUndefined();
      expect(g.env.OPENAI_BASE_URL).toBeUndefined();
    }
  });

  it.each(cases)(
    "$gatewayNodes gateways + $aiNodes AI nodes: nodeEnv reaches every node",
    ({ gatewayNodes, aiNodes }) => {
      const topology = derive({ gatewayNodes, aiNodes, nodeEnv: { HELLO_TIMEOUT_MS: "1234", EXTRA_FLAG: "yes" } });
      const all = [...topology.gateways, ...topology.aiNodes];
      expect(all).toHaveLength(gatewayNodes + aiNodes);
      for (const node of all) {
        expect(node.env.HELLO_TIMEOUT_MS, node.name).toBe("1234");
        expect(node.env.EXTRA_FLAG, node.name).toBe("yes");
      }
    },
  );

  it("every environment value is a string (it becomes a process environment)", () => {
    const topology = derive({ gatewayNodes: 2, aiNodes: 2, nodeEnv: { A: "1" } });
    for (const node of [...topology.gateways, ...topology.aiNodes])
      for (const [key, value] of Object.entries(node.env)) expect(typeof value, `${node.name} ${key}`).toBe("string");
  });

  it("the derived environments, with the CLUSTER_SECRET every target adds, are what the configuration loaders accept", () => {
    const topology = derive({ gatewayNodes: 3, aiNodes: 2, provider: { demoTokensPerSecond: 0 } });
    // The topology never carries secrets: each target adds them to the node's environment (the runner from its
    // state dir, the Docker stack from a GeneratedSecret).
    const secret = { CLUSTER_SECRET: "s".repeat(43) };
    for (const node of [...topology.gateways, ...topology.aiNodes]) {
      expect(Object.keys(node.env), node.name).not.toContain("CLUSTER_SECRET");
      expect(Object.keys(node.env), node.name).not.toContain("REDIS_PASSWORD");
    }
    for (const g of topology.gateways) {
      const config = loadGatewayConfig({ ...g.env, ...secret });
      expect(config.NODE_NAME).toBe(g.name);
      expect(config.PORT).toBe(g.port);
      expect(config.METRICS_PORT).toBe(g.metricsPort);
      expect(config.aiNodes).toEqual(topology.aiNodes.map((n) => ({ name: n.name, url: n.url })));
      expect(config.allowedOrigins).toEqual(["http://web.example:3000", "http://localhost:3000"]);
    }
    for (const n of topology.aiNodes) {
      const config = loadAiConfig({ ...n.env, ...secret });
      expect(config.NODE_NAME).toBe(n.name);
      expect(config.PORT).toBe(n.port);
      expect(config.publicUrl).toBe(n.url);
      expect(config.provider).toBe("demo");
      expect(config.DEMO_TOKENS_PER_SECOND).toBe(0);
    }
  });
});
