import { describe, expect, it } from "vitest";
import { mockEngine } from "../../testing/pulumi-mocks";
import { deriveTopology, parseTopologyConfig } from "../../topology";
import type { AwsNodeGroupArgs } from "./node-services";

// The gateway and AI node groups, their roles, the web entry and the load balancer: argument checks (exact
// messages, nothing registered) and what each makes. The stack-wide graph is in infra/stacks/aws.test.ts.

/** The AWS placement, written out: Cloud Map names, the fixed ports, gateways on the AI registry. */
const awsTopology = (gatewayNodes: number, aiNodes: number) =>
  deriveTopology(parseTopologyConfig({ gatewayNodes, aiNodes }), {
    bindHost: "0.0.0.0",
    hostOf: (name) => `${name}.chatgrid.internal`,
    gatewayPort: () => 8081,
    gatewayMetricsPort: () => 9081,
    aiPort: () => 7001,
    allowedOrigins: [],
    aiDiscovery: "registry",
  });
const topology = awsTopology(2, 2);

const base = (nodes = topology.gateways): AwsNodeGroupArgs => ({
  nodes,
  clusterArn: "arn:aws:ecs:us-east-1:123456789012:cluster/c",
  image: { ref: `repo@sha256:${"a".repeat(64)}`, repositoryArn: "arn:aws:ecr:us-east-1:123456789012:repository/r" },
  architecture: "ARM64",
  size: { cpu: 512, memory: 1024 },
  region: "us-east-1",
  subnetIds: ["subnet-a", "subnet-b"],
  securityGroupId: "sg-g",
  registryArn: (name) => `arn:aws:servicediscovery:us-east-1:123456789012:service/srv-${name}`,
  secrets: { REDIS_URL: "arn:redis", CLUSTER_SECRET: "arn:cluster" },
  environment: {},
  logRetentionDays: 30,
  tags: {},
});

async function groups() {
  const engine = await mockEngine("aws");
  const module = {
    ...(await import("./gateway-group")),
    ...(await import("./ai-node-group")),
    ...(await import("./roles")),
    ...(await import("./web-entry")),
    ...(await import("./load-balancer")),
  };
  return { engine, ...module };
}

describe("argument checks: exact messages, nothing registered", () => {
  it("node groups", async () => {
    const { engine, AwsGatewayGroup, AwsAiNodeGroup } = await groups();
    const cases: [() => unknown, string][] = [
      [() => new AwsGatewayGroup("g", base([])), "AwsGatewayGroup: needs at least one gateway node"],
      [
        () => new AwsGatewayGroup("g", base(topology.aiNodes)),
        "AwsGatewayGroup: ai-1 is a ai node, not a gateway node",
      ],
      [
        () => new AwsGatewayGroup("g", { ...base(), secrets: { CLUSTER_SECRET: "arn:c" } }),
        "AwsGatewayGroup: REDIS_URL must be among the secrets",
      ],
      [
        () =>
          new AwsGatewayGroup(
            "g",
            base(topology.gateways.map((g) => ({ ...g, env: { ...g.env, REDIS_URL: "redis://x" } }))),
          ),
        "AwsGatewayGroup: gateway-1 has REDIS_URL in its environment (on AWS it is a secret)",
      ],
      [
        () => new AwsGatewayGroup("g", { ...base(), environment: { OPENAI_API_KEY: "sk", DB_PASSWORD: "p" } }),
        'AwsGatewayGroup: OPENAI_API_KEY, DB_PASSWORD must be secrets, not environment (docs/aws.md "Secrets")',
      ],
      [
        () => new AwsGatewayGroup("g", { ...base(), secrets: { ...base().secrets, OPENAI_API_KEY: "arn:k" } }),
        "AwsGatewayGroup: gateways never get the model's API key",
      ],
      [
        () =>
          new AwsGatewayGroup(
            "g",
            base(topology.gateways.map((g) => ({ ...g, env: { ...g.env, AI_SERVICE_URLS: "ai-1=http://ai-1:7001" } }))),
          ),
        "AwsGatewayGroup: gateway-1 must find AI nodes by the registry only (AI_DISCOVERY=true)",
      ],
      [
        () =>
          new AwsAiNodeGroup(
            "a",
            base(topology.aiNodes.map((a) => ({ ...a, env: { ...a.env, PUBLIC_URL: "http://10.0.0.1:7001" } }))),
          ),
        "AwsAiNodeGroup: ai-1's PUBLIC_URL must be its Cloud Map name (ai-1.chatgrid.internal)",
      ],
    ];
    for (const [build, message] of cases) expect(build).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it("roles, web entry, load balancer", async () => {
    const { engine, AwsAppRoles, AwsWebEntry, AwsLoadBalancer } = await groups();
    const roles = { app: "web" as const, repositoryArn: "arn:r", logGroupArns: ["arn:l"], secretArns: [], tags: {} };
    expect(() => new AwsAppRoles("r", { ...roles, logGroupArns: [] })).toThrow(
      "AwsAppRoles web: needs the log groups it writes",
    );
    expect(() => new AwsAppRoles("r", { ...roles, kafka: { clusterArn: "c", topicArn: "t" } })).toThrow(
      "AwsAppRoles web: the web tasks produce no events",
    );
    const lb = {
      vpcId: "vpc-1",
      publicSubnetIds: ["subnet-a", "subnet-b"],
      securityGroupId: "sg-alb",
      targetPort: 3000,
      deletionProtection: false,
      tags: {},
    };
    expect(() => new AwsLoadBalancer("l", { ...lb, publicSubnetIds: ["subnet-a"] })).toThrow(
      "AwsLoadBalancer: needs public subnets in at least 2 zones, got 1",
    );
    expect(() => new AwsLoadBalancer("l", { ...lb, certificateArn: "cert-1" })).toThrow(
      'AwsLoadBalancer: certificateArn must be an ACM ARN, got "cert-1"',
    );
    const { renderNginxConf } = await import("../../nginx/render");
    const { awsNginxOptions } = await import("../../stacks/aws");
    const withPort = { ...topology, config: { ...topology.config, webPort: 3000 } };
    const good = renderNginxConf(withPort, awsNginxOptions(["172.20.0.0/24", "172.20.1.0/24"], "172.20.0.2"));
    const web = {
      nginxConf: good,
      port: 3000,
      tasks: 2,
      clusterArn: "arn:c",
      image: { ref: `r@sha256:${"b".repeat(64)}`, repositoryArn: "arn:r" },
      architecture: "ARM64" as const,
      size: { cpu: 256, memory: 512 },
      region: "us-east-1",
      subnetIds: ["subnet-a"],
      securityGroupId: "sg-web",
      targetGroupArn: "arn:tg",
      listeners: [],
      logRetentionDays: 30,
      tags: {},
    };
    const { realIp: _realIp, ...noRealIp } = awsNginxOptions(["172.20.0.0/24"], "172.20.0.2");
    expect(() => new AwsWebEntry("w", { ...web, nginxConf: renderNginxConf(withPort, noRealIp) })).toThrow(
      "AwsWebEntry: nginxConf must have the client address behind the load balancer (realIp)",
    );
    const { resolver: _resolver, ...noResolver } = awsNginxOptions(["172.20.0.0/24"], "172.20.0.2");
    expect(() => new AwsWebEntry("w", { ...web, nginxConf: renderNginxConf(withPort, noResolver) })).toThrow(
      "AwsWebEntry: nginxConf must have gateway names re-resolved as tasks move (resolver)",
    );
    expect(() => new AwsWebEntry("w", { ...web, tasks: 0 })).toThrow("AwsWebEntry: tasks must be at least 1, got 0");
    expect(() => new AwsWebEntry("w", { ...web, nginxConf: `${good}#${"x".repeat(41 * 1024)}\n` })).toThrow(
      /^AwsWebEntry: nginxConf is \d+ bytes; at most 40960 fit the task definition \(render it with webPortOnly\)$/,
    );
    // The largest topology (64 gateways) fits with room to spare.
    const largest = awsTopology(64, 1);
    const largestConf = renderNginxConf(
      { ...largest, config: { ...largest.config, webPort: 3000 } },
      awsNginxOptions(["172.20.0.0/24", "172.20.1.0/24", "172.20.2.0/24"], "172.20.0.2"),
    );
    expect(Buffer.byteLength(largestConf)).toBeLessThan(32 * 1024);
    expect(() => new AwsWebEntry("w", { ...web, nginxConf: "events {}" })).toThrow(
      "AwsWebEntry: nginxConf must be the output of renderNginxConf (infra/nginx/render.ts)",
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});

describe("what the groups make", () => {
  it("a gateway group of 2: per node a log group, a task definition and a service with its Cloud Map name; one roles pair", async () => {
    const { engine, AwsGatewayGroup } = await groups();
    const group = new AwsGatewayGroup("gw", {
      ...base(),
      kafka: { clusterArn: "arn:aws:kafka:us-east-1:123456789012:cluster/k/u", topicArn: "arn:t" },
    });
    await engine.settle();
    const names = (type: string) =>
      engine.resources
        .filter((r) => r.type === type)
        .map((r) => r.name)
        .sort();
    expect(names("aws:cloudwatch/logGroup:LogGroup")).toEqual(["gw-gateway-1", "gw-gateway-2"]);
    expect(names("aws:ecs/taskDefinition:TaskDefinition")).toEqual(["gw-gateway-1", "gw-gateway-2"]);
    expect(names("aws:ecs/service:Service")).toEqual(["gw-gateway-1", "gw-gateway-2"]);
    expect(names("aws:iam/role:Role")).toEqual(["gw-roles-execution", "gw-roles-task"]);
    const services = engine.resources.filter((r) => r.type === "aws:ecs/service:Service");
    expect(services.map((s) => (s.inputs.serviceRegistries as { registryArn: string }).registryArn).sort()).toEqual([
      "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-gateway-1",
      "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-gateway-2",
    ]);
    expect(group.nodeNames).toEqual(["gateway-1", "gateway-2"]);
    const trust = JSON.parse(
      engine.resources.find((r) => r.name === "gw-roles-execution" && r.type === "aws:iam/role:Role")!.inputs
        .assumeRolePolicy as string,
    );
    expect(trust.Statement).toEqual([
      { Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    // Every child sits under the group (a URN names the direct parent's type): the roles component too.
    for (const r of engine.resources.filter((r) => r.custom)) {
      expect(r.urn, r.name).toMatch(/::chatgrid:aws:(GatewayGroup|AppRoles)\$aws:/);
    }
    const roles = engine.resources.find((r) => r.type === "chatgrid:aws:AppRoles")!;
    expect(roles.urn).toContain("::chatgrid:aws:GatewayGroup$chatgrid:aws:AppRoles::gw-roles");
  });
});
