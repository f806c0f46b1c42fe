import { describe, expect, it } from "vitest";
import { awsMockId } from "../../testing/aws-mock-state";
import { findUndefined, mockEngine, resolved } from "../../testing/pulumi-mocks";
import type { AwsDiscoveryArgs } from "./discovery";

// The component module is imported only after the mocks are installed (a static import would build nothing).

const T = {
  namespace: "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace",
  service: "aws:servicediscovery/service:Service",
} as const;

const NODES = ["gateway-1", "gateway-2", "ai-1", "ai-2"];
const BASE: AwsDiscoveryArgs = { vpcId: "vpc-0123456789abcdef0", nodeNames: NODES, tags: { project: "chatgrid" } };

async function build(overrides: Partial<AwsDiscoveryArgs> = {}) {
  const engine = await mockEngine("aws");
  const { AwsDiscovery } = await import("./discovery");
  const discovery = new AwsDiscovery("names", { ...BASE, ...overrides });
  const namespaceId = await resolved(discovery.namespaceId);
  const arns = Object.fromEntries(
    await Promise.all(discovery.nodeNames.map(async (n) => [n, await resolved(discovery.serviceArn(n))] as const)),
  );
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  return { engine, discovery, namespaceId, arns, of };
}

describe("AwsDiscovery", () => {
  it("creates one private DNS namespace chatgrid.internal in the VPC", async () => {
    const built = await build();
    const [namespace, ...more] = built.of(T.namespace);
    expect(more).toEqual([]);
    expect(namespace!.name).toBe("names");
    expect(namespace!.inputs).toMatchObject({ name: "chatgrid.internal", vpc: "vpc-0123456789abcdef0" });
    expect(built.namespaceId).toBe(awsMockId(T.namespace, "names", {}));
    expect(built.namespaceId).toMatch(/^ns-[0-9a-f]{16}$/);
    expect(built.discovery.namespaceName).toBe("chatgrid.internal");
  });

  it("creates one MULTIVALUE A-record service (TTL 10) per node, with no health check config", async () => {
    const built = await build();
    const services = built.of(T.service);
    expect(services.map((s) => s.name)).toEqual(NODES.map((n) => `names-${n}`));
    for (const [i, service] of services.entries()) {
      expect(service.inputs.name).toBe(NODES[i]);
      expect(service.inputs.dnsConfig).toEqual({
        namespaceId: built.namespaceId,
        routingPolicy: "MULTIVALUE",
        dnsRecords: [{ type: "A", ttl: 10 }],
      });
      expect(service.inputs.healthCheckConfig).toBeUndefined();
      expect(service.inputs.healthCheckCustomConfig).toBeUndefined();
      expect(service.inputs.forceDestroy).toBe(true);
      expect(service.inputs.type).toBeUndefined();
    }
  });

  it("serviceArn(node) is that node's service; hostOf(node) is <node>.<namespace>", async () => {
    const built = await build();
    for (const node of NODES) {
      expect(built.arns[node]).toBe(
        `arn:aws:servicediscovery:us-east-1:123456789012:service/${awsMockId(T.service, `names-${node}`, {})}`,
      );
      expect(built.discovery.hostOf(node)).toBe(`${node}.chatgrid.internal`);
    }
    expect(new Set(Object.values(built.arns)).size).toBe(NODES.length);
    expect(() => built.discovery.serviceArn("ai-9")).toThrow(
      'AwsDiscovery: no service for node "ai-9" (known: gateway-1, gateway-2, ai-1, ai-2)',
    );
    expect(() => built.discovery.hostOf("web")).toThrow('AwsDiscovery: no service for node "web"');
  });

  it("takes another namespace and TTL", async () => {
    const built = await build({ namespace: "grid.corp.internal", dnsTtl: 30, nodeNames: ["ai-1"] });
    expect(built.of(T.namespace)[0]!.inputs.name).toBe("grid.corp.internal");
    expect(built.of(T.service)[0]!.inputs.dnsConfig).toMatchObject({ dnsRecords: [{ type: "A", ttl: 30 }] });
    expect(built.discovery.hostOf("ai-1")).toBe("ai-1.grid.corp.internal");
  });

  it("tags the namespace and services; every child is parented; no invoke; no input contains 'undefined'", async () => {
    const built = await build();
    for (const resource of built.engine.resources.filter((r) => r.custom)) {
      expect(resource.inputs.tags).toMatchObject({
        project: "chatgrid",
        Name: resource.name,
        "chatgrid:component": "chatgrid:aws:Discovery",
      });
      expect(resource.urn).toContain("::chatgrid:aws:Discovery$");
    }
    expect(built.engine.resources).toHaveLength(1 + 1 + NODES.length);
    expect(findUndefined(built.engine.resources)).toEqual([]);
    expect(built.engine.invokes).toEqual([]);
  });

  it.each<[Partial<AwsDiscoveryArgs>, string]>([
    [{ nodeNames: [] }, "AwsDiscovery: nodeNames needs at least one node"],
    [{ nodeNames: ["ai-1", "ai-1"] }, "AwsDiscovery: node name ai-1 is listed twice"],
    [{ nodeNames: ["AI_1"] }, 'AwsDiscovery: node name "AI_1" is not a DNS label (lowercase letters, digits and "-")'],
    [
      { nodeNames: ["ai-1."] },
      'AwsDiscovery: node name "ai-1." is not a DNS label (lowercase letters, digits and "-")',
    ],
    [
      { namespace: "internal" },
      'AwsDiscovery: namespace must be a DNS name of at least two labels (e.g. chatgrid.internal), got "internal"',
    ],
    [
      { namespace: "chat_grid.internal" },
      'AwsDiscovery: namespace label "chat_grid" is not a DNS label (lowercase letters, digits and "-")',
    ],
    [{ dnsTtl: 0 }, "AwsDiscovery: dnsTtl must be a whole number of seconds from 1 to 300, got 0"],
    [{ tags: { Name: "x" } }, 'AwsDiscovery: tag "Name" is set by the component'],
  ])("refuses %j before registering anything", async (overrides, message) => {
    const engine = await mockEngine("aws");
    const { AwsDiscovery } = await import("./discovery");
    expect(() => new AwsDiscovery("names", { ...BASE, ...overrides })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});
