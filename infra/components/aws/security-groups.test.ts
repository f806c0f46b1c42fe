import { describe, expect, it } from "vitest";
import { awsMockId } from "../../testing/aws-mock-state";
import { findUndefined, mockEngine, type RegisteredResource, resolved } from "../../testing/pulumi-mocks";
import type { AwsSecurityGroupsArgs } from "./security-groups";

// The component module is imported only after the mocks are installed (a static import would build nothing).

const T = {
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
} as const;

const BASE: AwsSecurityGroupsArgs = {
  vpcId: "vpc-0123456789abcdef0",
  vpcCidr: "172.20.0.0/16",
  ports: { web: 3000, gateway: 8081, ai: 7001, redis: 6379, kafka: 9098 },
  kafka: true,
  certificate: true,
  tags: { project: "chatgrid" },
};

/** A rule as the engine sees it: which group, which way, what, from/to which group or CIDR. */
interface Rule {
  tier: string;
  direction: "in" | "out";
  protocol: string;
  port: number;
  peer: string;
}

async function build(overrides: Partial<AwsSecurityGroupsArgs> = {}) {
  const engine = await mockEngine("aws");
  const { AwsSecurityGroups } = await import("./security-groups");
  const sgs = new AwsSecurityGroups("sg", { ...BASE, ...overrides });
  const ids = {
    alb: await resolved(sgs.ids.alb),
    web: await resolved(sgs.ids.web),
    gateway: await resolved(sgs.ids.gateway),
    ai: await resolved(sgs.ids.ai),
    redis: await resolved(sgs.ids.redis),
    kafka: sgs.ids.kafka ? await resolved(sgs.ids.kafka) : undefined,
  };
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  const tierOf = new Map(of(T.sg).map((g) => [awsMockId(T.sg, g.name, g.inputs), g.name.replace(/^sg-/, "")]));
  const rule = (r: RegisteredResource): Rule => {
    const peer = r.inputs.referencedSecurityGroupId
      ? `sg:${tierOf.get(r.inputs.referencedSecurityGroupId as string)}`
      : `cidr:${r.inputs.cidrIpv4}`;
    expect(r.inputs.fromPort, r.name).toBe(r.inputs.toPort);
    return {
      tier: tierOf.get(r.inputs.securityGroupId as string)!,
      direction: r.type === T.ingress ? "in" : "out",
      protocol: r.inputs.ipProtocol as string,
      port: r.inputs.fromPort as number,
      peer,
    };
  };
  const rules = [...of(T.ingress), ...of(T.egress)];
  return { engine, sgs, ids, of, rules, summary: rules.map(rule), tierOf };
}

const r = (tier: string, direction: "in" | "out", protocol: string, port: number, peer: string): Rule => ({
  tier,
  direction,
  protocol,
  port,
  peer,
});

/** The whole rule set with kafka and a certificate, written out independently of the component. */
const FULL: Rule[] = [
  r("alb", "in", "tcp", 80, "cidr:0.0.0.0/0"),
  r("alb", "in", "tcp", 443, "cidr:0.0.0.0/0"),
  r("web", "in", "tcp", 3000, "sg:alb"),
  r("gateway", "in", "tcp", 8081, "sg:web"),
  r("ai", "in", "tcp", 7001, "sg:gateway"),
  r("redis", "in", "tcp", 6379, "sg:gateway"),
  r("redis", "in", "tcp", 6379, "sg:ai"),
  r("kafka", "in", "tcp", 9098, "sg:gateway"),
  r("kafka", "in", "tcp", 9098, "sg:ai"),
  r("alb", "out", "tcp", 3000, "sg:web"),
  r("web", "out", "tcp", 8081, "sg:gateway"),
  r("gateway", "out", "tcp", 7001, "sg:ai"),
  r("gateway", "out", "tcp", 6379, "sg:redis"),
  r("gateway", "out", "tcp", 9098, "sg:kafka"),
  r("ai", "out", "tcp", 6379, "sg:redis"),
  r("ai", "out", "tcp", 9098, "sg:kafka"),
  ...["web", "gateway", "ai"].flatMap((tier) => [
    r(tier, "out", "tcp", 443, "cidr:0.0.0.0/0"),
    r(tier, "out", "udp", 53, "cidr:172.20.0.2/32"),
    r(tier, "out", "tcp", 53, "cidr:172.20.0.2/32"),
  ]),
];

const sorted = (rules: Rule[]) => [...rules].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

describe("AwsSecurityGroups", () => {
  it("creates one group per tier in the VPC, no inline rules", async () => {
    const built = await build();
    const groups = built.of(T.sg);
    expect(groups.map((g) => g.name)).toEqual(["sg-alb", "sg-web", "sg-gateway", "sg-ai", "sg-redis", "sg-kafka"]);
    for (const group of groups) {
      expect(group.inputs.vpcId).toBe("vpc-0123456789abcdef0");
      expect(group.inputs.ingress).toBeUndefined();
      expect(group.inputs.egress).toBeUndefined();
      expect(group.inputs.description).toMatch(/^chatgrid /);
    }
    for (const tier of ["alb", "web", "gateway", "ai", "redis", "kafka"] as const) {
      expect(built.ids[tier]).toBe(awsMockId(T.sg, `sg-${tier}`, {}));
      expect(built.ids[tier]).toMatch(/^sg-0[0-9a-f]{16}$/);
    }
  });

  it("has exactly the chain internet → alb → web → gateway → ai, redis/kafka from gateway and ai, explicit egress", async () => {
    const built = await build();
    expect(sorted(built.summary)).toEqual(sorted(FULL));
  });

  it("opens nothing but the ALB group to the world, and only on 80/443", async () => {
    const built = await build();
    const world = built.summary.filter((rule) => rule.direction === "in" && !rule.peer.startsWith("sg:"));
    expect(world.map((rule) => [rule.tier, rule.port])).toEqual([
      ["alb", 80],
      ["alb", 443],
    ]);
    for (const rule of built.rules) expect(rule.inputs.cidrIpv6).toBeUndefined();
  });

  it("gives redis and kafka no egress at all, the ALB egress only to web", async () => {
    const built = await build();
    const egress = (tier: string) => built.summary.filter((rule) => rule.tier === tier && rule.direction === "out");
    expect(egress("redis")).toEqual([]);
    expect(egress("kafka")).toEqual([]);
    expect(egress("alb")).toEqual([r("alb", "out", "tcp", 3000, "sg:web")]);
  });

  it("describes every rule (in the characters AWS accepts) and names it <component>-<tier>-<in|out>-<what>", async () => {
    const built = await build();
    for (const rule of built.rules) {
      expect(rule.inputs.description, rule.name).toMatch(/^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{10,255}$/);
      expect(rule.name).toMatch(/^sg-(alb|web|gateway|ai|redis|kafka)-(in|out)-[a-z-]+$/);
    }
    for (const group of built.of(T.sg)) {
      expect(group.inputs.description).toMatch(/^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{1,255}$/);
    }
    const byName = (name: string) => built.rules.find((x) => x.name === name)!.inputs.description;
    expect(byName("sg-alb-in-http")).toBe("HTTP from the internet (redirected to HTTPS)");
    expect(byName("sg-alb-in-https")).toBe("HTTPS from the internet");
    expect(byName("sg-web-in-alb")).toBe("nginx (web) port 3000 from the ALB");
    expect(byName("sg-redis-in-ai")).toBe("Redis port 6379 from the AI nodes");
    expect(byName("sg-gateway-out-kafka")).toBe("To Kafka (MSK IAM) port 9098");
    expect(byName("sg-ai-out-https")).toBe(
      "HTTPS out: ECR, CloudWatch Logs, Secrets Manager, the LLM provider (via the NAT)",
    );
    expect(byName("sg-web-out-dns-udp")).toBe("DNS (UDP) to the VPC resolver, for the Cloud Map names");
    expect(built.sgs.rules).toHaveLength(FULL.length);
  });

  it("without a certificate: no 443 from the world (80 only)", async () => {
    const built = await build({ certificate: false });
    expect(sorted(built.summary)).toEqual(sorted(FULL.filter((x) => !(x.tier === "alb" && x.port === 443))));
    expect(built.rules.find((x) => x.name === "sg-alb-in-http")!.inputs.description).toBe("HTTP from the internet");
  });

  it("without kafka: no kafka group and no rule mentions it", async () => {
    const built = await build({ kafka: false });
    expect(built.of(T.sg).map((g) => g.name)).not.toContain("sg-kafka");
    expect(built.ids.kafka).toBeUndefined();
    expect(built.sgs.ids.kafka).toBeUndefined();
    const kafka = (x: Rule) => x.tier === "kafka" || x.peer === "sg:kafka";
    expect(sorted(built.summary)).toEqual(sorted(FULL.filter((x) => !kafka(x))));
  });

  it("follows the ports and the VPC's resolver it is given", async () => {
    const built = await build({
      vpcCidr: "10.9.0.0/16",
      ports: { web: 8080, gateway: 9000, ai: 9100, redis: 6380, kafka: 9096 },
    });
    const ports = new Set(built.summary.map((x) => x.port));
    expect([...ports].sort((a, b) => a - b)).toEqual([53, 80, 443, 6380, 8080, 9000, 9096, 9100]);
    const dns = built.summary.filter((x) => x.port === 53);
    expect(dns).toHaveLength(6);
    for (const rule of dns) expect(rule.peer).toBe("cidr:10.9.0.2/32");
  });

  it("tags every group and rule; every child is parented; no invoke; no input contains 'undefined'", async () => {
    const built = await build();
    for (const resource of built.engine.resources.filter((x) => x.custom)) {
      expect(resource.inputs.tags, resource.name).toMatchObject({
        project: "chatgrid",
        Name: resource.name,
        "chatgrid:component": "chatgrid:aws:SecurityGroups",
      });
      expect(resource.urn).toContain("::chatgrid:aws:SecurityGroups$");
    }
    for (const group of built.of(T.sg)) {
      expect((group.inputs.tags as Record<string, string>)["chatgrid:tier"]).toBe(group.name.replace("sg-", ""));
    }
    expect(findUndefined(built.engine.resources)).toEqual([]);
    expect(built.engine.invokes).toEqual([]);
  });

  const ports = BASE.ports;
  it.each<[Partial<AwsSecurityGroupsArgs>, string]>([
    [
      { vpcCidr: "172.20.0.0/24" },
      'AwsSecurityGroups: vpcCidr must be an IPv4 /16 written as a.b.0.0/16, got "172.20.0.0/24"',
    ],
    [{ ports: { ...ports, web: 0 } }, "AwsSecurityGroups: ports.web must be a port number from 1 to 65535, got 0"],
    [
      { ports: { ...ports, ai: 70000 } },
      "AwsSecurityGroups: ports.ai must be a port number from 1 to 65535, got 70000",
    ],
    [
      { ports: { ...ports, kafka: 9098.5 } },
      "AwsSecurityGroups: ports.kafka must be a port number from 1 to 65535, got 9098.5",
    ],
    [
      { ports: { web: 3000, gateway: 8081, ai: 7001, kafka: 9098 } as AwsSecurityGroupsArgs["ports"] },
      "AwsSecurityGroups: ports.redis must be a port number from 1 to 65535, got undefined",
    ],
    [{ kafka: "yes" as unknown as boolean }, 'AwsSecurityGroups: kafka must be true or false, got "yes"'],
    [
      { certificate: undefined as unknown as boolean },
      'AwsSecurityGroups: certificate must be true or false, got "undefined"',
    ],
    [{ tags: { "aws:x": "y" } }, 'AwsSecurityGroups: tag "aws:x" uses the prefix "aws:", which AWS reserves'],
  ])("refuses %j before registering anything", async (overrides, message) => {
    const engine = await mockEngine("aws");
    const { AwsSecurityGroups } = await import("./security-groups");
    expect(() => new AwsSecurityGroups("sg", { ...BASE, ...overrides })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});
