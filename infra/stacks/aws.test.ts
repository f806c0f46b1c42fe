import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { SECRET_NAME } from "../components/aws/node-services";
import { renderNginxConf } from "../nginx/render";
import { fakeBuildDigest, MOCK_ACCOUNT } from "../testing/aws-mock-state";
import { findUndefined, graphDiff, mockEngine, type RegisteredResource, resolved } from "../testing/pulumi-mocks";

// The aws stack on Pulumi's mocked engine (nothing can be deployed to AWS from here): the program is imported
// after the mocks are installed, and the mock fabricates what AWS would compute (ARNs, endpoints, digests).

const T = {
  vpc: "aws:ec2/vpc:Vpc",
  subnet: "aws:ec2/subnet:Subnet",
  nat: "aws:ec2/natGateway:NatGateway",
  taskDefinition: "aws:ecs/taskDefinition:TaskDefinition",
  service: "aws:ecs/service:Service",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  role: "aws:iam/role:Role",
  listener: "aws:lb/listener:Listener",
  loadBalancer: "aws:lb/loadBalancer:LoadBalancer",
  targetGroup: "aws:lb/targetGroup:TargetGroup",
  replicationGroup: "aws:elasticache/replicationGroup:ReplicationGroup",
  mskCluster: "aws:msk/cluster:Cluster",
  secret: "aws:secretsmanager/secret:Secret",
  secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
  image: "docker-build:index:Image",
  repository: "aws:ecr/repository:Repository",
  lifecycle: "aws:ecr/lifecyclePolicy:LifecyclePolicy",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  cloudMap: "aws:servicediscovery/service:Service",
} as const;

const ECR_TOKEN = "aws:ecr/getAuthorizationToken:getAuthorizationToken";
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const unwrap = (value: unknown): unknown =>
  typeof value === "object" && value !== null && SECRET_SIG in value
    ? (value as unknown as { value: unknown }).value
    : value;
const isSecret = (value: unknown) => typeof value === "object" && value !== null && SECRET_SIG in value;

interface ContainerDef {
  name: string;
  image: string;
  essential: boolean;
  readonlyRootFilesystem: boolean;
  stopTimeout: number;
  environment: { name: string; value: string }[];
  secrets: { name: string; valueFrom: string }[];
  healthCheck: { command: string[]; interval: number; timeout: number; retries: number; startPeriod: number };
  logConfiguration: { logDriver: string; options: Record<string, string> };
  mountPoints: { sourceVolume: string; containerPath: string }[];
  portMappings: { containerPort: number }[];
  entryPoint?: string[];
  command?: string[];
}

interface Graph {
  resources: RegisteredResource[];
  of(type: string): RegisteredResource[];
  one(type: string, name: string): RegisteredResource;
  container(family: string): { task: RegisteredResource; def: ContainerDef };
  outputs: Record<string, unknown>;
}

async function buildGraph(raw: Record<string, string>, region = "us-east-1"): Promise<Graph> {
  const engine = await mockEngine("aws", {
    invokes: {
      [ECR_TOKEN]: () => ({
        userName: "AWS",
        password: "mock-ecr-token",
        proxyEndpoint: `https://${MOCK_ACCOUNT}.dkr.ecr.${region}.amazonaws.com`,
      }),
    },
  });
  pulumi.runtime.setAllConfig({ "aws:region": region });
  const { parseAwsStackConfig } = await import("./aws-config");
  const { buildAwsStack } = await import("./aws");
  const stack = buildAwsStack(parseAwsStackConfig(raw, region));
  const outputs = await resolved(stack.outputs as unknown as Record<string, unknown>);
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  return {
    resources: engine.resources,
    of,
    one(type, name) {
      const found = of(type).filter((r) => r.name === name);
      if (found.length !== 1) throw new Error(`${found.length} of ${type} ${name}`);
      return found[0]!;
    },
    container(family) {
      const task = of(T.taskDefinition).find((r) => r.inputs.family === `chatgrid-aws-${family}`);
      if (!task) throw new Error(`no task definition chatgrid-aws-${family}`);
      const defs = JSON.parse(unwrap(task.inputs.containerDefinitions) as string) as ContainerDef[];
      expect(defs).toHaveLength(1);
      return { task, def: defs[0]! };
    },
    outputs,
  };
}

const envOf = (def: ContainerDef) => Object.fromEntries(def.environment.map((e) => [e.name, e.value]));
const secretsOf = (def: ContainerDef) => Object.fromEntries(def.secrets.map((s) => [s.name, s.valueFrom]));

describe("stack aws, defaults (3 gateways + 3 AI nodes, ARM64, MSK, no certificate)", () => {
  let graph: Graph;
  const gateways = ["gateway-1", "gateway-2", "gateway-3"];
  const ai = ["ai-1", "ai-2", "ai-3"];

  it('builds, with no input anywhere containing "undefined" and no invoke but the ECR token', async () => {
    graph = await buildGraph({});
    expect(findUndefined(graph.resources)).toEqual([]);
    expect(graph.outputs.nodeNames).toEqual({ gateways, aiNodes: ai });
    expect(graph.outputs.url).toMatch(/^http:\/\/chatgrid-alb-.*\.us-east-1\.elb\.amazonaws\.com$/);
  });

  it("one service and task definition per node plus the web service; counts of everything else", () => {
    const families = graph
      .of(T.taskDefinition)
      .map((t) => t.inputs.family)
      .sort();
    expect(families).toEqual([...ai, ...gateways, "web"].map((n) => `chatgrid-aws-${n}`).sort());
    expect(graph.of(T.service)).toHaveLength(7);
    expect(graph.of(T.cloudMap)).toHaveLength(6);
    expect(graph.of(T.subnet)).toHaveLength(6);
    expect(graph.of(T.nat)).toHaveLength(1);
    expect(graph.of(T.repository)).toHaveLength(3);
    expect(graph.of(T.lifecycle)).toHaveLength(3);
    expect(graph.of(T.image)).toHaveLength(3);
    expect(graph.of(T.replicationGroup)).toHaveLength(1);
    expect(graph.of(T.mskCluster)).toHaveLength(1);
    expect(graph.of(T.logGroup)).toHaveLength(7);
    expect(graph.of(T.listener)).toHaveLength(1);
  });

  it("every service: Fargate 1.4.0, private subnets, no public IP, circuit breaker with rollback, 100/200, steady state, no ECS Exec", () => {
    const appSubnets = graph
      .of(T.subnet)
      .filter((s) => /^172\.20\.(16|32)\.0\/20$/.test(s.inputs.cidrBlock as string))
      .map((s) => `${s.name}-id`);
    for (const service of graph.of(T.service)) {
      expect(service.inputs, service.name).toMatchObject({
        launchType: "FARGATE",
        platformVersion: "1.4.0",
        deploymentMinimumHealthyPercent: 100,
        deploymentMaximumPercent: 200,
        deploymentCircuitBreaker: { enable: true, rollback: true },
        waitForSteadyState: true,
        enableExecuteCommand: false,
        networkConfiguration: { assignPublicIp: false },
      });
      const network = service.inputs.networkConfiguration as { subnets: string[] };
      expect(network.subnets.length, service.name).toBe(2);
      expect(service.inputs.serviceConnectConfiguration, service.name).toBeUndefined();
      expect(appSubnets.length).toBe(2);
    }
    for (const name of [...gateways, ...ai]) {
      const service = graph.of(T.service).find((s) => s.name.endsWith(`-${name}`))!;
      expect(service.inputs.desiredCount).toBe(1);
      expect(service.inputs.serviceRegistries).toBeDefined();
    }
    const web = graph.of(T.service).find((s) => s.name.endsWith("-web"))!;
    expect(web.inputs.desiredCount).toBe(2);
    expect(web.inputs.loadBalancers).toEqual([expect.objectContaining({ containerName: "web", containerPort: 3000 })]);
  });

  it("every container: its image by digest, the task's architecture, read-only root, liveness check, awslogs, stop timeout above the drain", () => {
    for (const family of [...gateways, ...ai, "web"]) {
      const { task, def } = graph.container(family);
      const app = family === "web" ? "web" : family.startsWith("ai") ? "ai" : "gateway";
      expect(def.image).toMatch(
        new RegExp(
          `^${MOCK_ACCOUNT}\\.dkr\\.ecr\\.us-east-1\\.amazonaws\\.com/[^@/]+@${fakeBuildDigest(`${app}-build`)}$`,
        ),
      );
      expect(def.image).toMatch(/@sha256:[0-9a-f]{64}$/);
      expect(task.inputs.runtimePlatform).toEqual({ operatingSystemFamily: "LINUX", cpuArchitecture: "ARM64" });
      expect(def).toMatchObject({ essential: true, readonlyRootFilesystem: true, stopTimeout: 30 });
      expect(def.logConfiguration.logDriver).toBe("awslogs");
      expect(def.logConfiguration.options).toMatchObject({
        "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": family,
        mode: "non-blocking",
      });
      expect(def.healthCheck.command[0]).toBe("CMD");
      if (app !== "web") {
        expect(def.healthCheck.command.join(" ")).toContain("/live");
        expect(def.healthCheck.command.join(" ")).not.toContain("/health");
        expect(envOf(def).SHUTDOWN_GRACE_MS).toBe("15000");
        expect(Number(envOf(def).SHUTDOWN_GRACE_MS) / 1000).toBeLessThan(def.stopTimeout);
      }
    }
    const images = graph.of(T.image);
    for (const image of images) expect(image.inputs.platforms).toEqual(["linux/arm64"]);
  });

  it("secrets never in environment: REDIS_URL and CLUSTER_SECRET as ECS secrets from Secrets Manager", () => {
    for (const family of [...gateways, ...ai]) {
      const { def } = graph.container(family);
      expect(Object.keys(secretsOf(def)).sort(), family).toEqual(["CLUSTER_SECRET", "REDIS_URL"]);
      for (const name of Object.keys(envOf(def))) expect(name, family).not.toMatch(SECRET_NAME);
      expect(secretsOf(def).REDIS_URL).toMatch(/^arn:aws:secretsmanager:us-east-1:123456789012:secret:/);
    }
    const url = graph
      .of(T.secretVersion)
      .map((v) => v.inputs.secretString)
      .find((s) => String(unwrap(s)).startsWith("rediss://"));
    expect(url).toBeDefined();
    expect(isSecret(url)).toBe(true);
    expect(String(unwrap(url))).toMatch(/^rediss:\/\/:[0-9a-f]{64}@master\..+\.cache\.amazonaws\.com:6379$/);
  });

  it("gateways find AI nodes by the registry only; Kafka over MSK IAM from the cluster's bootstrap", () => {
    for (const family of gateways) {
      const env = envOf(graph.container(family).def);
      expect(env.AI_SERVICE_URLS).toBeUndefined();
      expect(env.AI_DISCOVERY).toBe("true");
      expect(env).toMatchObject({ KAFKA_SSL: "true", KAFKA_SASL_MECHANISM: "msk-iam", KAFKA_AWS_REGION: "us-east-1" });
      expect(env.KAFKA_BROKERS).toMatch(/^b-1\..+:9098,b-2\..+:9098$/);
    }
    for (const [i, family] of ai.entries()) {
      expect(envOf(graph.container(family).def).PUBLIC_URL).toBe(`http://ai-${i + 1}.chatgrid.internal:7001`);
    }
  });

  it("the web task runs the renderer's AWS output: realip from the ALB's subnets, resolve on every gateway", async () => {
    const { def } = graph.container("web");
    const conf = envOf(def).CHATGRID_NGINX_CONF!;
    const { awsNginxOptions } = await import("./aws");
    const { parseAwsStackConfig } = await import("./aws-config");
    const { deriveTopology } = await import("../topology");
    const { awsPlacement } = await import("./aws");
    const config = parseAwsStackConfig({}, "us-east-1");
    const topology = deriveTopology(config.topology, awsPlacement(config));
    expect(conf).toBe(
      renderNginxConf(
        { ...topology, config: { ...topology.config, webPort: 3000 } },
        awsNginxOptions(["172.20.0.0/24", "172.20.1.0/24"], "172.20.0.2"),
      ),
    );
    expect(conf).toContain("set_real_ip_from 172.20.0.0/24;");
    expect(conf).toContain("real_ip_header X-Forwarded-For;");
    expect(conf).toContain("resolver 172.20.0.2 valid=10s ipv6=off;");
    const servers = conf.match(/^\s*server \S+ .*;/gm) ?? [];
    expect(servers).toHaveLength(3);
    for (const line of servers) expect(line).toMatch(/gateway-\d\.chatgrid\.internal:8081 .*resolve;/);
    expect(def.mountPoints.map((m) => m.containerPath)).toEqual(["/tmp"]);
    expect(def.entryPoint).toEqual(["sh", "-c"]);
  });
});

describe("stack aws: what each service waits for (the engine's creation order)", () => {
  it("every service after its roles' policies and the NAT routes; every task definition after the secrets' versions; the nodes after the topic", async () => {
    const graph = await buildGraph({});
    const urn = (type: string, name: string) => graph.one(type, name).urn;
    const routes = graph.of("aws:ec2/route:Route").map((r) => r.urn);
    expect(routes.length).toBeGreaterThan(0);
    const policies = graph.of(T.rolePolicy);
    const topic = graph.of("aws:msk/topic:Topic")[0]!.urn;
    const versions = graph.of(T.secretVersion).map((v) => v.urn);
    for (const service of graph.of(T.service)) {
      for (const route of routes) expect(service.dependencies, service.name).toContain(route);
      const app = service.name.includes("gateway") ? "gateways" : service.name.includes("-ai-") ? "ai" : "roles";
      const own = policies.filter((p) =>
        p.name.startsWith(app === "roles" ? "chatgrid-roles" : `chatgrid-${app}-roles`),
      );
      expect(own.length, service.name).toBeGreaterThan(0);
      for (const policy of own) expect(service.dependencies, service.name).toContain(policy.urn);
      if (app !== "roles") expect(service.dependencies, service.name).toContain(topic);
    }
    for (const name of ["gateway-1", "ai-1"]) {
      const { task } = graph.container(name);
      // Its secrets are the versions' ARNs: the task definition (and so the service) waits for the values.
      for (const version of versions) expect(task.dependencies, name).toContain(version);
    }
    expect(urn(T.replicationGroup, "chatgrid")).toBeTruthy();
  });
});

describe("stack aws: other configurations", () => {
  it("1 + 1, X86_64, a certificate: HTTPS on 443 with TLS 1.3/1.2, port 80 only redirects; amd64 images", async () => {
    const certificateArn = "arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
    const graph = await buildGraph({ gatewayNodes: "1", aiNodes: "1", cpuArchitecture: "X86_64", certificateArn });
    expect(findUndefined(graph.resources)).toEqual([]);
    expect(graph.of(T.service)).toHaveLength(3);
    const listeners = graph.of(T.listener).map((l) => l.inputs);
    expect(listeners).toHaveLength(2);
    expect(listeners.find((l) => l.port === 443)).toMatchObject({
      protocol: "HTTPS",
      certificateArn,
      sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
    });
    expect(listeners.find((l) => l.port === 80)).toMatchObject({
      protocol: "HTTP",
      defaultActions: [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }],
    });
    for (const image of graph.of(T.image)) expect(image.inputs.platforms).toEqual(["linux/amd64"]);
    for (const task of graph.of(T.taskDefinition)) {
      expect(task.inputs.runtimePlatform).toEqual({ operatingSystemFamily: "LINUX", cpuArchitecture: "X86_64" });
    }
    expect(graph.outputs.url).toMatch(/^https:\/\//);
    // 443 is open to the world on the ALB's group only.
    const world = graph.of(T.ingress).filter((r) => r.inputs.cidrIpv4 === "0.0.0.0/0" || r.inputs.cidrIpv6 === "::/0");
    expect(world.map((r) => r.inputs.fromPort).sort()).toEqual([443, 80]);
  });

  it("6 + 4 in three zones, NAT per zone: 9 subnets, 3 NAT gateways, 11 services, 3 MSK brokers", async () => {
    const graph = await buildGraph({
      gatewayNodes: "6",
      aiNodes: "4",
      availabilityZones: "us-east-1a,us-east-1b,us-east-1c",
      natGateways: "perAz",
    });
    expect(findUndefined(graph.resources)).toEqual([]);
    expect(graph.of(T.subnet)).toHaveLength(9);
    expect(graph.of(T.nat)).toHaveLength(3);
    expect(graph.of(T.service)).toHaveLength(11);
    expect(graph.of(T.cloudMap)).toHaveLength(10);
    expect(graph.of(T.mskCluster)[0]!.inputs.numberOfBrokerNodes).toBe(3);
    const conf = envOf(graph.container("web").def).CHATGRID_NGINX_CONF!;
    expect(conf.match(/resolve;/g)).toHaveLength(6);
    // Only the web port (the load balancer's target): no entry or stub_status server behind an ALB.
    expect(conf.match(/^\s*listen \S+;/gm)).toEqual(["    listen 3000;"]);
    expect(conf.match(/^\s*set_real_ip_from /gm)).toHaveLength(3);
  });

  it("Kafka off: no MSK, no Kafka security group, no task role, no KAFKA_* in any environment", async () => {
    const graph = await buildGraph({ kafkaMode: "off" });
    expect(graph.of(T.mskCluster)).toHaveLength(0);
    expect(graph.resources.some((r) => r.type.startsWith("aws:msk/"))).toBe(false);
    for (const task of graph.of(T.taskDefinition)) {
      expect(task.inputs.taskRoleArn, task.name).toBeUndefined();
      const def = JSON.parse(unwrap(task.inputs.containerDefinitions) as string) as ContainerDef[];
      expect(def[0]!.environment.filter((e) => e.name.startsWith("KAFKA_"))).toEqual([]);
    }
    expect(graph.outputs.kafkaBootstrap).toBeUndefined();
  });

  it("scaling aiNodes 3 → 5 adds AI services and names, and changes no gateway task definition or service", async () => {
    const before = await buildGraph({});
    const after = await buildGraph({ aiNodes: "5" });
    const changes = graphDiff(before.resources, after.resources);
    expect(changes.removed).toEqual([]);
    expect(changes.changed.filter((k) => /gateway/.test(k))).toEqual([]);
    expect(changes.added.filter((k) => k.startsWith(T.service))).toEqual([
      `${T.service} chatgrid-ai-ai-4`,
      `${T.service} chatgrid-ai-ai-5`,
    ]);
    // The gateway roles' policies are unchanged too; the AI roles' log groups grow.
    expect(changes.changed.every((k) => /chatgrid-ai|AiNode|ai-roles/.test(k))).toBe(true);
  });
});

describe("stack aws: IAM", () => {
  it("each app kind its own execution role: only its repository, its log groups, its secrets; gateways cannot read the model key", async () => {
    const graph = await buildGraph({ provider: "openai", openaiApiKey: "sk-test-aws" });
    const policies = Object.fromEntries(
      graph.of(T.rolePolicy).map((p) => [
        p.name,
        JSON.parse(unwrap(p.inputs.policy) as string) as {
          Statement: { Action: string[]; Resource: string | string[] }[];
        },
      ]),
    );
    expect(Object.keys(policies).sort()).toEqual(
      [
        "chatgrid-ai-roles-execution",
        "chatgrid-ai-roles-task",
        "chatgrid-gateways-roles-execution",
        "chatgrid-gateways-roles-task",
        "chatgrid-roles-execution",
      ].sort(),
    );
    for (const [name, policy] of Object.entries(policies)) {
      for (const statement of policy.Statement) {
        for (const action of statement.Action) expect(action, name).not.toMatch(/\*/);
        if (statement.Resource === "*") expect(statement.Action, name).toEqual(["ecr:GetAuthorizationToken"]);
      }
    }
    const readable = (name: string) =>
      policies[name]!.Statement.filter((s) => s.Action.includes("secretsmanager:GetSecretValue")).flatMap(
        (s) => s.Resource as string[],
      );
    const openaiSecret = graph.of(T.secret).find((s) => s.name === "chatgrid-openai-api-key")!;
    const openaiArn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${openaiSecret.name}`;
    expect(readable("chatgrid-ai-roles-execution").some((arn) => arn.startsWith(openaiArn))).toBe(true);
    expect(readable("chatgrid-gateways-roles-execution").some((arn) => arn.startsWith(openaiArn))).toBe(false);
    expect(readable("chatgrid-gateways-roles-execution")).toHaveLength(2);
    expect(readable("chatgrid-roles-execution")).toEqual([]);
    // The AI nodes get the key as an ECS secret; it is plain text nowhere in the graph.
    expect(secretsOf(graph.container("ai-1").def).OPENAI_API_KEY).toMatch(/^arn:aws:secretsmanager:/);
    const plain = JSON.stringify(graph.resources.map((r) => r.inputs));
    const wrapped = graph.of(T.secretVersion).filter((v) => isSecret(v.inputs.secretString)).length;
    expect(wrapped).toBe(graph.of(T.secretVersion).length);
    expect(
      plain.replace(/"4dabf18193072939515e22adb298388d":"1b47061264138c4ac30d75fd1eb44270","value":"sk-test-aws"/g, ""),
    ).not.toContain("sk-test-aws");
    // MSK: the producer's actions on the cluster and the topic, nothing else.
    const task = policies["chatgrid-gateways-roles-task"]!.Statement;
    expect(task.map((s) => s.Action)).toEqual([
      ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"],
      ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
    ]);
    expect((task[0]!.Resource as string[])[0]).toMatch(/^arn:aws:kafka:us-east-1:123456789012:cluster\//);
    expect((task[1]!.Resource as string[])[0]).toMatch(
      /^arn:aws:kafka:us-east-1:123456789012:topic\/.+\/chatgrid\.events$/,
    );
  });
});

describe("stack aws: under a preview (unknown outputs)", () => {
  it("the program builds every resource while ARNs, endpoints and digests are still unknown", async () => {
    const engine = await mockEngine("aws", {
      preview: true,
      invokes: { [ECR_TOKEN]: () => ({ userName: "AWS", password: "mock-ecr-token" }) },
    });
    pulumi.runtime.setAllConfig({ "aws:region": "us-east-1" });
    const { parseAwsStackConfig } = await import("./aws-config");
    const { buildAwsStack } = await import("./aws");
    buildAwsStack(parseAwsStackConfig({}, "us-east-1"));
    await engine.settle();
    expect(engine.resources.filter((r) => r.type === T.service)).toHaveLength(7);
    expect(engine.resources.filter((r) => r.type === T.taskDefinition)).toHaveLength(7);
  });
});

describe("stack aws: the load balancer", () => {
  it("public, idle timeout 3600, invalid headers dropped, Host kept, XFF appended; target group by IP with a 30 s drain", async () => {
    const graph = await buildGraph({});
    const [alb] = graph.of(T.loadBalancer);
    expect(alb!.inputs).toMatchObject({
      loadBalancerType: "application",
      internal: false,
      idleTimeout: 3600,
      dropInvalidHeaderFields: true,
      preserveHostHeader: true,
      xffHeaderProcessingMode: "append",
    });
    expect(graph.of(T.targetGroup)[0]!.inputs).toMatchObject({
      targetType: "ip",
      port: 3000,
      protocol: "HTTP",
      deregistrationDelay: 30,
      healthCheck: { path: "/healthz", matcher: "200" },
    });
    const conf = envOf(graph.container("web").def).CHATGRID_NGINX_CONF!;
    expect(conf).toContain("keepalive_timeout 3605s;");
  });
});
