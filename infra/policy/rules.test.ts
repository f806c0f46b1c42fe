import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import { describe, expect, it } from "vitest";
import {
  type EvaluateOptions,
  evaluate,
  evaluateDetailed,
  fixture,
  type HarnessResource,
  UNKNOWN_VALUE,
} from "../testing/policy-harness";
import * as rules from "./rules";
import { isSecretLikeName, policies } from "./rules";

// Every rule of infra/policy/rules.ts with fixtures that pass and fixtures that fail, and the exact messages. The
// fixtures are the resources' inputs as the mocked engine records them (docs/policy.md "Tests").

/** The type tokens the engine reports for @pulumi/aws 7 (checked against the installed classes below). */
const T = {
  taskDefinition: "aws:ecs/taskDefinition:TaskDefinition",
  service: "aws:ecs/service:Service",
  replicationGroup: "aws:elasticache/replicationGroup:ReplicationGroup",
  parameterGroup: "aws:elasticache/parameterGroup:ParameterGroup",
  mskCluster: "aws:msk/cluster:Cluster",
  mskConfiguration: "aws:msk/configuration:Configuration",
  loadBalancer: "aws:lb/loadBalancer:LoadBalancer",
  albLoadBalancer: "aws:alb/loadBalancer:LoadBalancer",
  listener: "aws:lb/listener:Listener",
  albListener: "aws:alb/listener:Listener",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  securityGroupRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  ingressRule: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egressRule: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  policy: "aws:iam/policy:Policy",
  rolePolicyAttachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
  repository: "aws:ecr/repository:Repository",
  lifecyclePolicy: "aws:ecr/lifecyclePolicy:LifecyclePolicy",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  vpc: "aws:ec2/vpc:Vpc",
  secret: "aws:secretsmanager/secret:Secret",
  dockerContainer: "docker:index/container:Container",
  dockerRemoteImage: "docker:index/remoteImage:RemoteImage",
} as const;

const CLASSES: Record<keyof typeof T, unknown> = {
  taskDefinition: aws.ecs.TaskDefinition,
  service: aws.ecs.Service,
  replicationGroup: aws.elasticache.ReplicationGroup,
  parameterGroup: aws.elasticache.ParameterGroup,
  mskCluster: aws.msk.Cluster,
  mskConfiguration: aws.msk.Configuration,
  loadBalancer: aws.lb.LoadBalancer,
  albLoadBalancer: aws.alb.LoadBalancer,
  listener: aws.lb.Listener,
  albListener: aws.alb.Listener,
  securityGroup: aws.ec2.SecurityGroup,
  securityGroupRule: aws.ec2.SecurityGroupRule,
  ingressRule: aws.vpc.SecurityGroupIngressRule,
  egressRule: aws.vpc.SecurityGroupEgressRule,
  role: aws.iam.Role,
  rolePolicy: aws.iam.RolePolicy,
  policy: aws.iam.Policy,
  rolePolicyAttachment: aws.iam.RolePolicyAttachment,
  repository: aws.ecr.Repository,
  lifecyclePolicy: aws.ecr.LifecyclePolicy,
  logGroup: aws.cloudwatch.LogGroup,
  vpc: aws.ec2.Vpc,
  secret: aws.secretsmanager.Secret,
  dockerContainer: docker.Container,
  dockerRemoteImage: docker.RemoteImage,
};

/** How a secret input reaches the engine (infra/stacks/local.test.ts unwraps the same shape). */
const secret = (value: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });

const DIGEST = `sha256:${"ab".repeat(32)}`;
const ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

// ---- compliant fixtures, one builder per type; tests override what they break ----

type Inputs = Record<string, unknown>;

const container = (name: string, overrides: Inputs = {}): Inputs => ({
  name,
  image: `${ECR}/chatgrid/${name}@${DIGEST}`,
  essential: true,
  readonlyRootFilesystem: true,
  stopTimeout: 20,
  healthCheck: { command: ["CMD", "node", "-e", "process.exit(0)"], interval: 10, timeout: 3, retries: 3 },
  logConfiguration: {
    logDriver: "awslogs",
    options: {
      "awslogs-group": `/chatgrid/${name}`,
      "awslogs-region": "us-east-1",
      "awslogs-stream-prefix": name,
      mode: "non-blocking",
    },
  },
  environment: [
    { name: "NODE_NAME", value: name },
    { name: "PROVIDER_FIRST_TOKEN_TIMEOUT_MS", value: "30000" },
    { name: "MAX_ANSWER_TOKENS", value: "4096" },
  ],
  secrets: [{ name: "REDIS_URL", valueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-url" }],
  ...overrides,
});
const taskDefinition = (containers: Inputs[], overrides: Inputs = {}, name = "gateway-1") =>
  fixture(T.taskDefinition, name, {
    family: `chatgrid-${name}`,
    containerDefinitions: JSON.stringify(containers),
    runtimePlatform: { operatingSystemFamily: "LINUX", cpuArchitecture: "ARM64" },
    requiresCompatibilities: ["FARGATE"],
    networkMode: "awsvpc",
    ...overrides,
  });
const service = (overrides: Inputs = {}) =>
  fixture(T.service, "gateway-1", {
    launchType: "FARGATE",
    desiredCount: 1,
    deploymentMinimumHealthyPercent: 100,
    deploymentMaximumPercent: 200,
    deploymentCircuitBreaker: { enable: true, rollback: true },
    enableExecuteCommand: false,
    networkConfiguration: { subnets: ["subnet-a"], securityGroups: ["sg-gateway"], assignPublicIp: false },
    ...overrides,
  });
const replicationGroup = (overrides: Inputs = {}) =>
  fixture(T.replicationGroup, "redis", {
    description: "chatgrid",
    engine: "valkey",
    numCacheClusters: 2,
    automaticFailoverEnabled: true,
    multiAzEnabled: true,
    clusterMode: "disabled",
    transitEncryptionEnabled: true,
    transitEncryptionMode: "required",
    atRestEncryptionEnabled: true,
    authToken: secret("a".repeat(64)),
    ...overrides,
  });
const parameterGroup = (parameters: { name: string; value: string }[]) =>
  fixture(T.parameterGroup, "redis", { family: "valkey8", parameters });
const mskCluster = (overrides: Inputs = {}) =>
  fixture(T.mskCluster, "events", {
    kafkaVersion: "3.9.x",
    numberOfBrokerNodes: 2,
    brokerNodeGroupInfo: { instanceType: "kafka.t3.small", clientSubnets: ["a", "b"], securityGroups: ["sg-msk"] },
    encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
    clientAuthentication: { sasl: { iam: true }, unauthenticated: false },
    ...overrides,
  });
const mskConfiguration = (lines: string[]) =>
  fixture(T.mskConfiguration, "events", { kafkaVersions: ["3.9.x"], serverProperties: lines.join("\n") });
const GOOD_KAFKA = ["auto.create.topics.enable=false", "default.replication.factor=2", "min.insync.replicas=1"];
const loadBalancer = (name: string, overrides: Inputs = {}, type: string = T.loadBalancer) =>
  fixture(type, name, {
    loadBalancerType: "application",
    internal: false,
    dropInvalidHeaderFields: true,
    idleTimeout: 3600,
    securityGroups: [`sg-${name}`],
    subnets: ["subnet-public-a", "subnet-public-b"],
    ...overrides,
  });
const listener = (name: string, inputs: Inputs, type: string = T.listener) =>
  fixture(type, name, { loadBalancerArn: "arn:alb/entry", ...inputs });
const FORWARD = [{ type: "forward", targetGroupArn: "arn:tg/web" }];
const REDIRECT = [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }];
const ingress = (name: string, overrides: Inputs = {}) =>
  fixture(T.ingressRule, name, {
    securityGroupId: "sg-entry",
    ipProtocol: "tcp",
    fromPort: 443,
    toPort: 443,
    cidrIpv4: "0.0.0.0/0",
    description: "HTTPS from anywhere",
    ...overrides,
  });
const document = (...statements: Inputs[]) => JSON.stringify({ Version: "2012-10-17", Statement: statements });
const ECS_TRUST = document({
  Effect: "Allow",
  Principal: { Service: "ecs-tasks.amazonaws.com" },
  Action: "sts:AssumeRole",
});
const role = (overrides: Inputs = {}) =>
  fixture(T.role, "gateway-execution", { assumeRolePolicy: ECS_TRUST, ...overrides });
const rolePolicy = (policy: unknown) =>
  fixture(T.rolePolicy, "gateway-execution", { role: "gateway-execution", policy });
const repository = (name: string, overrides: Inputs = {}) =>
  fixture(T.repository, name, {
    name: `chatgrid/${name}`,
    imageTagMutability: "IMMUTABLE",
    imageScanningConfiguration: { scanOnPush: true },
    ...overrides,
  });
const lifecyclePolicy = (repo: string) =>
  fixture(T.lifecyclePolicy, repo, { repository: `chatgrid/${repo}`, policy: JSON.stringify({ rules: [] }) });

/** `resource: message` for every violation of one policy over the resources. */
async function violations(
  policy: (typeof policies)[number],
  resources: HarnessResource[],
  options: EvaluateOptions = {},
): Promise<string[]> {
  const found = await evaluate(resources, { ...options, policies: [policy] });
  return found.map((v) => `${v.resource ?? "(stack)"}: ${v.message}`);
}

/** Whether the policy applied to the resource (ran to the end, with or without violations). */
async function applies(policy: (typeof policies)[number], resources: HarnessResource[]): Promise<string[]> {
  return (await evaluateDetailed(resources, { policies: [policy] })).applied[policy.name] ?? [];
}

// ------------------------------------------------------------------------------------------------------------------

describe("the pack", () => {
  it("every rule has a unique name, a description and an enforcement level; all are mandatory", () => {
    const names = policies.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    for (const p of policies) {
      expect(p.name, p.name).toMatch(/^[a-z0-9-]+$/);
      expect(p.description.length, p.name).toBeGreaterThan(20);
      expect(p.enforcementLevel, p.name).toBe("mandatory");
    }
    expect(names).toHaveLength(37);
  });

  it("`policies` lists every exported rule once, in file order", () => {
    const exported = Object.values(rules).filter(
      (value): value is (typeof policies)[number] =>
        typeof value === "object" && value !== null && "name" in value && "enforcementLevel" in value,
    );
    expect(policies).toEqual(exported);
  });

  it("the type tokens the fixtures use are those the installed @pulumi/aws and @pulumi/docker classes register", () => {
    for (const [key, cls] of Object.entries(CLASSES)) {
      expect((cls as { __pulumiType: string }).__pulumiType, key).toBe(T[key as keyof typeof T]);
    }
  });

  it("a compliant set of every resource type passes every rule", async () => {
    const stack = [
      taskDefinition([container("gateway")]),
      service(),
      replicationGroup(),
      parameterGroup([{ name: "maxmemory-policy", value: "volatile-lru" }]),
      mskCluster(),
      mskConfiguration(GOOD_KAFKA),
      loadBalancer("entry", { securityGroups: ["sg-entry"] }),
      listener("http", { protocol: "HTTP", port: 80, defaultActions: REDIRECT }),
      listener("https", { protocol: "HTTPS", port: 443, certificateArn: "arn:acm", defaultActions: FORWARD }),
      fixture(T.securityGroup, "entry", { vpcId: "vpc-1", description: "entry" }),
      ingress("entry-https"),
      ingress("entry-http", { fromPort: 80, toPort: 80, description: "HTTP (redirects)" }),
      fixture(T.egressRule, "web-egress", {
        securityGroupId: "sg-web",
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        cidrIpv4: "0.0.0.0/0",
        description: "ECR, logs, secrets through NAT",
      }),
      role(),
      rolePolicy(
        document(
          { Effect: "Allow", Action: ["ecr:GetAuthorizationToken"], Resource: "*" },
          { Effect: "Allow", Action: ["ecr:BatchGetImage"], Resource: ["arn:aws:ecr:us-east-1:1:repository/x"] },
        ),
      ),
      repository("gateway"),
      lifecyclePolicy("gateway"),
      fixture(T.logGroup, "gateway", { retentionInDays: 30 }),
      fixture(T.vpc, "vpc", { cidrBlock: "172.20.0.0/16", enableDnsSupport: true, enableDnsHostnames: true }),
      fixture(T.secret, "redis-url", { recoveryWindowInDays: 7 }),
    ];
    const result = await evaluateDetailed(stack);
    expect(result.violations).toEqual([]);
    // Every rule applied to something (the compliant set covers them all).
    expect(Object.keys(result.applied).sort()).toEqual(policies.map((p) => p.name).sort());
  });

  it("preview: a value the engine does not know yet skips the rule for that resource (not applicable), never fails it", async () => {
    const stack = [
      taskDefinition([container("gateway")], { containerDefinitions: UNKNOWN_VALUE }),
      replicationGroup({ authToken: UNKNOWN_VALUE }),
      fixture(T.logGroup, "gateway", { retentionInDays: UNKNOWN_VALUE }),
    ];
    const result = await evaluateDetailed(stack);
    expect(result.violations).toEqual([]);
    const skipped = result.notApplicable.filter((n) => n.reason?.startsWith("a value is unknown"));
    expect(skipped).toContainEqual({
      policy: "ecs-container-readonly-root-filesystem",
      resource: "gateway-1",
      type: T.taskDefinition,
      reason: "a value is unknown during preview: string value at .containerDefinitions can't be known during preview",
    });
    expect(skipped).toContainEqual({
      policy: "log-group-retention",
      resource: "gateway",
      type: T.logGroup,
      reason: "a value is unknown during preview: string value at .retentionInDays can't be known during preview",
    });
    // The task definition's other rule does not read the containers: it still runs.
    expect(result.applied["ecs-task-cpu-architecture"]).toEqual(["gateway-1"]);
    // A generated AUTH token is unknown during preview: being set is what the rule checks, so it passes.
    expect(result.applied["elasticache-auth"]).toEqual(["redis"]);
  });

  it("secrets reach the rules unwrapped, as the CLI hands them over", async () => {
    const td = taskDefinition([container("ai", { environment: [{ name: "OPENAI_API_KEY", value: "sk-1" }] })]);
    td.inputs.containerDefinitions = secret(td.inputs.containerDefinitions);
    expect(await violations(rules.ecsNoSecretsInEnvironment, [td])).toEqual([
      'gateway-1: container "ai": environment variable OPENAI_API_KEY looks like a secret; pass it in secrets',
    ]);
  });
});

// ------------------------------------------------------------------------------------------------------------------

describe("ECS task definitions", () => {
  it("ecs-container-readonly-root-filesystem", async () => {
    const p = rules.ecsContainerReadonlyRootFilesystem;
    expect(await violations(p, [taskDefinition([container("gateway")])])).toEqual([]);
    expect(
      await violations(p, [
        taskDefinition([
          container("web", { readonlyRootFilesystem: false }),
          container("sidecar", { readonlyRootFilesystem: undefined }),
        ]),
      ]),
    ).toEqual([
      'gateway-1: container "web": readonlyRootFilesystem is false, not true',
      'gateway-1: container "sidecar": readonlyRootFilesystem is not set, not true',
    ]);
  });

  it("every container rule reports a containerDefinitions that is not a JSON array once", async () => {
    const broken = taskDefinition([], { containerDefinitions: '{"name":"web"}' });
    expect(await violations(rules.ecsContainerReadonlyRootFilesystem, [broken])).toEqual([
      "gateway-1: containerDefinitions is not a JSON array of container definitions",
    ]);
    expect(
      await violations(rules.ecsContainerAwslogs, [taskDefinition([], { containerDefinitions: "not json" })]),
    ).toEqual(["gateway-1: containerDefinitions is not a JSON array of container definitions"]);
  });

  it("malformed container fields make no rule throw", async () => {
    const odd = {
      name: "x",
      environment: { A: "b" },
      logConfiguration: null,
      healthCheck: "CMD true",
      stopTimeout: "20",
    };
    const found = await evaluate([taskDefinition([odd, null as unknown as Inputs])]);
    expect(found.map((v) => `${v.policy}: ${v.message}`)).toEqual([
      "ecs-container-readonly-root-filesystem: containerDefinitions is not a JSON array of container definitions",
      "ecs-container-awslogs: containerDefinitions is not a JSON array of container definitions",
      "ecs-essential-container-health-check: containerDefinitions is not a JSON array of container definitions",
      "ecs-container-stop-timeout: containerDefinitions is not a JSON array of container definitions",
      "ecs-no-secrets-in-environment: containerDefinitions is not a JSON array of container definitions",
      "images-pinned-by-digest: containerDefinitions is not a JSON array of container definitions",
    ]);
    const [readonly, awslogs, health, stop, env, image] = await Promise.all(
      [
        rules.ecsContainerReadonlyRootFilesystem,
        rules.ecsContainerAwslogs,
        rules.ecsEssentialContainerHealthCheck,
        rules.ecsContainerStopTimeout,
        rules.ecsNoSecretsInEnvironment,
        rules.imagesPinnedByDigest,
      ].map((p) => violations(p, [taskDefinition([odd])])),
    );
    expect([readonly, awslogs, health, stop, env, image]).toEqual([
      ['gateway-1: container "x": readonlyRootFilesystem is not set, not true'],
      ['gateway-1: container "x": logDriver is not set, not "awslogs"'],
      ['gateway-1: container "x" is essential and has no healthCheck command'],
      ['gateway-1: container "x": stopTimeout is "20", not in [15, 120]'],
      [],
      ['gateway-1: container "x": image is not set, not pinned by digest (@sha256:<64 hex>)'],
    ]);
  });

  it("ecs-container-awslogs", async () => {
    const p = rules.ecsContainerAwslogs;
    expect(await violations(p, [taskDefinition([container("gateway")])])).toEqual([]);
    expect(
      await violations(p, [
        taskDefinition([
          container("a", { logConfiguration: undefined }),
          container("b", { logConfiguration: { logDriver: "json-file" } }),
          container("c", { logConfiguration: { logDriver: "awslogs", options: { "awslogs-group": "/chatgrid/c" } } }),
        ]),
      ]),
    ).toEqual([
      'gateway-1: container "a": logDriver is not set, not "awslogs"',
      'gateway-1: container "b": logDriver is "json-file", not "awslogs"',
      'gateway-1: container "c": awslogs options lack awslogs-region, awslogs-stream-prefix',
    ]);
  });

  it("ecs-essential-container-health-check", async () => {
    const p = rules.ecsEssentialContainerHealthCheck;
    // A non-essential container needs none.
    const sidecar = container("sidecar", { essential: false, healthCheck: undefined });
    expect(await violations(p, [taskDefinition([container("gateway"), sidecar])])).toEqual([]);
    expect(
      await violations(p, [
        taskDefinition([
          container("web", { healthCheck: undefined }),
          // essential defaults to true in ECS.
          container("ai", { essential: undefined, healthCheck: { command: [] } }),
        ]),
      ]),
    ).toEqual([
      'gateway-1: container "web" is essential and has no healthCheck command',
      'gateway-1: container "ai" is essential and has no healthCheck command',
    ]);
  });

  it("ecs-container-stop-timeout", async () => {
    const p = rules.ecsContainerStopTimeout;
    expect(
      await violations(p, [
        taskDefinition([container("a", { stopTimeout: 15 }), container("b", { stopTimeout: 120 })]),
      ]),
    ).toEqual([]);
    expect(
      await violations(p, [
        taskDefinition([
          container("a", { stopTimeout: 10 }),
          container("b", { stopTimeout: 121 }),
          container("c", { stopTimeout: undefined }),
        ]),
      ]),
    ).toEqual([
      'gateway-1: container "a": stopTimeout is 10, not in [15, 120]',
      'gateway-1: container "b": stopTimeout is 121, not in [15, 120]',
      'gateway-1: container "c": stopTimeout is not set, not in [15, 120]',
    ]);
  });

  it("ecs-no-secrets-in-environment", async () => {
    const p = rules.ecsNoSecretsInEnvironment;
    // The compliant container has PROVIDER_FIRST_TOKEN_TIMEOUT_MS and MAX_ANSWER_TOKENS, and REDIS_URL in secrets.
    expect(await violations(p, [taskDefinition([container("gateway")])])).toEqual([]);
    const env = [
      { name: "OPENAI_API_KEY", value: "sk-1" },
      { name: "REDIS_URL", value: "rediss://primary:6379" },
      { name: "cluster_secret", value: "x" },
      { name: "EVENTS_URL", value: "https://user:hunter2@events.example.com/" },
      { name: "PUBLIC_URL", value: "http://ai-1.chatgrid.internal:7001" },
    ];
    expect(await violations(p, [taskDefinition([container("ai", { environment: env })])])).toEqual([
      'gateway-1: container "ai": environment variable OPENAI_API_KEY looks like a secret; pass it in secrets',
      'gateway-1: container "ai": environment variable REDIS_URL looks like a secret; pass it in secrets',
      'gateway-1: container "ai": environment variable cluster_secret looks like a secret; pass it in secrets',
      'gateway-1: container "ai": environment variable EVENTS_URL is a URL with a password; pass it in secrets',
    ]);
  });

  it.each([
    ["OPENAI_API_KEY", true],
    ["REDIS_PASSWORD", true],
    ["CLUSTER_SECRET", true],
    ["AUTH_TOKEN", true],
    ["REDIS_URL", true],
    ["AWS_CREDENTIALS", true],
    ["KEY", true],
    ["PROVIDER_FIRST_TOKEN_TIMEOUT_MS", false],
    ["PROVIDER_INTER_TOKEN_TIMEOUT_MS", false],
    ["MAX_ANSWER_TOKENS", false],
    ["DEMO_MAX_TOKENS", false],
    ["CLUSTER_SECRET_MIN_CHARS", false],
    ["KAFKA_BROKERS", false],
  ])("isSecretLikeName(%s) is %s", (name, expected) => {
    expect(isSecretLikeName(name)).toBe(expected);
  });

  it("ecs-task-cpu-architecture", async () => {
    const p = rules.ecsTaskCpuArchitecture;
    expect(await violations(p, [taskDefinition([container("gateway")])])).toEqual([]);
    expect(
      await violations(p, [taskDefinition([container("gateway")], { runtimePlatform: { cpuArchitecture: "X86_64" } })]),
    ).toEqual([]);
    expect(
      await violations(p, [
        taskDefinition([container("gateway")], { runtimePlatform: undefined }, "a"),
        taskDefinition([container("gateway")], { runtimePlatform: { cpuArchitecture: "arm64" } }, "b"),
      ]),
    ).toEqual([
      "a: runtimePlatform.cpuArchitecture is not set, not one of X86_64, ARM64",
      'b: runtimePlatform.cpuArchitecture is "arm64", not one of X86_64, ARM64',
    ]);
  });

  it("images-pinned-by-digest: ECS containers, Docker containers and pulled Docker images", async () => {
    const p = rules.imagesPinnedByDigest;
    const pinned = [
      taskDefinition([container("gateway")]),
      fixture(T.dockerContainer, "chatgrid-redis", { name: "chatgrid-redis", image: DIGEST }),
      fixture(T.dockerContainer, "chatgrid-web", { name: "chatgrid-web", image: `chatgrid/web:local@${DIGEST}` }),
      fixture(T.dockerRemoteImage, "redis-image", { name: `redis:7.4-alpine@${DIGEST}` }),
    ];
    expect(await violations(p, pinned)).toEqual([]);
    expect(await applies(p, pinned)).toEqual(["gateway-1", "chatgrid-redis", "chatgrid-web", "redis-image"]);
    expect(
      await violations(p, [
        taskDefinition([container("gateway", { image: `${ECR}/chatgrid/gateway:latest` })]),
        fixture(T.dockerContainer, "chatgrid-redis", { name: "chatgrid-redis", image: "redis:7" }),
        fixture(T.dockerRemoteImage, "redis-image", { name: "redis:7.4-alpine" }),
      ]),
    ).toEqual([
      `gateway-1: container "gateway": image is "${ECR}/chatgrid/gateway:latest", not pinned by digest (@sha256:<64 hex>)`,
      'chatgrid-redis: image is "redis:7", neither an image id (sha256:<64 hex>) nor pinned by digest',
      'redis-image: image is "redis:7.4-alpine", not pinned by digest (@sha256:<64 hex>)',
    ]);
  });
});

describe("ECS services", () => {
  it("ecs-service-no-execute-command (off is the default)", async () => {
    const p = rules.ecsServiceNoExecuteCommand;
    expect(await violations(p, [service(), service({ enableExecuteCommand: undefined })])).toEqual([]);
    expect(await violations(p, [service({ enableExecuteCommand: true })])).toEqual([
      "gateway-1: enableExecuteCommand is true",
    ]);
  });

  it("ecs-service-deployment", async () => {
    const p = rules.ecsServiceDeployment;
    // 100/200 are the defaults.
    expect(
      await violations(p, [
        service(),
        service({ deploymentMinimumHealthyPercent: undefined, deploymentMaximumPercent: undefined }),
      ]),
    ).toEqual([]);
    expect(await violations(p, [service({ deploymentCircuitBreaker: undefined })])).toEqual([
      "gateway-1: deploymentCircuitBreaker is not set, not { enable: true, rollback: true }: a broken image would replace tasks forever",
    ]);
    expect(
      await violations(p, [
        service({
          deploymentCircuitBreaker: { enable: true, rollback: false },
          deploymentMinimumHealthyPercent: 0,
          deploymentMaximumPercent: 100,
        }),
      ]),
    ).toEqual([
      'gateway-1: deploymentCircuitBreaker is {"enable":true,"rollback":false}, not { enable: true, rollback: true }: a broken image would replace tasks forever',
      "gateway-1: deploymentMinimumHealthyPercent is 0, not 100",
      "gateway-1: deploymentMaximumPercent is 100, not 200",
    ]);
  });

  it("ecs-service-no-public-ip (no public IP is the default)", async () => {
    const p = rules.ecsServiceNoPublicIp;
    expect(await violations(p, [service(), service({ networkConfiguration: { subnets: ["subnet-a"] } })])).toEqual([]);
    expect(
      await violations(p, [service({ networkConfiguration: { subnets: ["subnet-a"], assignPublicIp: true } })]),
    ).toEqual(["gateway-1: networkConfiguration.assignPublicIp is true"]);
  });

  it("ecs-service-no-service-connect", async () => {
    const p = rules.ecsServiceNoServiceConnect;
    expect(await violations(p, [service(), service({ serviceConnectConfiguration: { enabled: false } })])).toEqual([]);
    expect(
      await violations(p, [service({ serviceConnectConfiguration: { enabled: true, namespace: "chatgrid" } })]),
    ).toEqual(["gateway-1: serviceConnectConfiguration is enabled"]);
  });
});

describe("ElastiCache", () => {
  it("elasticache-encryption", async () => {
    const p = rules.elasticacheEncryption;
    expect(await violations(p, [replicationGroup()])).toEqual([]);
    expect(
      await violations(p, [
        replicationGroup({
          transitEncryptionEnabled: undefined,
          transitEncryptionMode: "preferred",
          atRestEncryptionEnabled: false,
        }),
      ]),
    ).toEqual([
      "redis: transitEncryptionEnabled is not set, not true",
      'redis: transitEncryptionMode is "preferred", not "required"',
      "redis: atRestEncryptionEnabled is false, not true",
    ]);
  });

  it("elasticache-auth: an AUTH token (secret, write-only or unknown during preview) or RBAC user groups", async () => {
    const p = rules.elasticacheAuth;
    expect(
      await violations(p, [
        replicationGroup(),
        replicationGroup({ authToken: undefined, authTokenWo: secret("b".repeat(64)) }),
        replicationGroup({ authToken: undefined, userGroupIds: ["chatgrid"] }),
        replicationGroup({ authToken: UNKNOWN_VALUE }),
      ]),
    ).toEqual([]);
    expect(await violations(p, [replicationGroup({ authToken: undefined, userGroupIds: [] })])).toEqual([
      "redis: no authToken, authTokenWo or userGroupIds: any client that reaches port 6379 is served",
    ]);
  });

  it("elasticache-cluster-mode-disabled", async () => {
    const p = rules.elasticacheClusterModeDisabled;
    expect(await violations(p, [replicationGroup()])).toEqual([]);
    expect(await violations(p, [replicationGroup({ clusterMode: undefined })])).toEqual([
      'redis: clusterMode is not set, not "disabled"',
    ]);
    expect(
      await violations(p, [replicationGroup({ clusterMode: "enabled", numNodeGroups: 2, replicasPerNodeGroup: 1 })]),
    ).toEqual([
      'redis: clusterMode is "enabled", not "disabled"',
      "redis: numNodeGroups is set (2): it configures cluster mode shards",
      "redis: replicasPerNodeGroup is set (1): it configures cluster mode shards",
    ]);
  });

  it("elasticache-multi-az-failover (only with a replica)", async () => {
    const p = rules.elasticacheMultiAzFailover;
    expect(await violations(p, [replicationGroup()])).toEqual([]);
    const single = replicationGroup({ numCacheClusters: 1, automaticFailoverEnabled: false, multiAzEnabled: false });
    expect(await violations(p, [single])).toEqual([]);
    expect(await applies(p, [single])).toEqual([]);
    expect(
      await violations(p, [replicationGroup({ automaticFailoverEnabled: undefined, multiAzEnabled: false })]),
    ).toEqual([
      "redis: numCacheClusters is 2 but automaticFailoverEnabled is not set",
      "redis: numCacheClusters is 2 but multiAzEnabled is false",
    ]);
  });

  it("elasticache-maxmemory-policy", async () => {
    const p = rules.elasticacheMaxmemoryPolicy;
    for (const value of ["volatile-lru", "volatile-lfu", "volatile-ttl", "volatile-random", "noeviction"]) {
      expect(await violations(p, [parameterGroup([{ name: "maxmemory-policy", value }])]), value).toEqual([]);
    }
    expect(await violations(p, [parameterGroup([{ name: "maxmemory-policy", value: "allkeys-lru" }])])).toEqual([
      'redis: maxmemory-policy is "allkeys-lru", not one of volatile-lru, volatile-lfu, volatile-random, volatile-ttl, noeviction',
    ]);
    expect(await violations(p, [parameterGroup([{ name: "reserved-memory-percent", value: "30" }])])).toEqual([
      "redis: maxmemory-policy is not set (want one of volatile-lru, volatile-lfu, volatile-random, volatile-ttl, noeviction)",
    ]);
  });
});

describe("MSK", () => {
  it("msk-encryption-in-transit (TLS and in-cluster encryption are the defaults)", async () => {
    const p = rules.mskEncryptionInTransit;
    expect(await violations(p, [mskCluster(), mskCluster({ encryptionInfo: undefined })])).toEqual([]);
    expect(
      await violations(p, [
        mskCluster({ encryptionInfo: { encryptionInTransit: { clientBroker: "TLS_PLAINTEXT", inCluster: false } } }),
      ]),
    ).toEqual([
      'events: encryptionInTransit.clientBroker is "TLS_PLAINTEXT", not "TLS"',
      "events: encryptionInTransit.inCluster is false",
    ]);
  });

  it("msk-client-authentication", async () => {
    const p = rules.mskClientAuthentication;
    expect(await violations(p, [mskCluster()])).toEqual([]);
    expect(
      await violations(p, [mskCluster({ clientAuthentication: { sasl: { scram: true }, unauthenticated: true } })]),
    ).toEqual([
      "events: clientAuthentication.unauthenticated is true",
      "events: clientAuthentication.sasl.iam is not set, not true",
    ]);
  });

  it("msk-configuration", async () => {
    const p = rules.mskConfiguration;
    expect(await violations(p, [mskConfiguration(GOOD_KAFKA)])).toEqual([]);
    // Auto-creation is off by default; comments and blank lines are ignored.
    expect(
      await violations(p, [
        mskConfiguration(["# chatgrid", "", "default.replication.factor = 3", "min.insync.replicas=2"]),
      ]),
    ).toEqual([]);
    expect(
      await violations(p, [mskConfiguration(["auto.create.topics.enable=true", "default.replication.factor=2"])]),
    ).toEqual([
      'events: auto.create.topics.enable is "true"',
      'events: default.replication.factor is "2" and min.insync.replicas is not set: set both',
    ]);
    expect(await violations(p, [mskConfiguration(["default.replication.factor=2", "min.insync.replicas=2"])])).toEqual([
      "events: min.insync.replicas 2 is not less than default.replication.factor 2",
    ]);
  });
});

describe("load balancers and listeners", () => {
  it("alb-drop-invalid-header-fields (application load balancers of aws.lb and aws.alb)", async () => {
    const p = rules.albDropInvalidHeaderFields;
    expect(await violations(p, [loadBalancer("entry")])).toEqual([]);
    const nlb = loadBalancer("nlb", { loadBalancerType: "network", dropInvalidHeaderFields: undefined });
    expect(await violations(p, [nlb])).toEqual([]);
    expect(await applies(p, [nlb])).toEqual([]);
    expect(
      await violations(p, [
        loadBalancer("entry", { dropInvalidHeaderFields: undefined, loadBalancerType: undefined }),
        loadBalancer("legacy", { dropInvalidHeaderFields: false }, T.albLoadBalancer),
      ]),
    ).toEqual([
      "entry: dropInvalidHeaderFields is not set, not true",
      "legacy: dropInvalidHeaderFields is false, not true",
    ]);
  });

  it("alb-idle-timeout", async () => {
    const p = rules.albIdleTimeout;
    expect(await violations(p, [loadBalancer("entry"), loadBalancer("max", { idleTimeout: 4000 })])).toEqual([]);
    expect(
      await violations(p, [loadBalancer("a", { idleTimeout: 60 }), loadBalancer("b", { idleTimeout: undefined })]),
    ).toEqual(["a: idleTimeout is 60, less than 3600", "b: idleTimeout is not set, less than 3600"]);
  });

  it("lb-single-internet-facing (a stack policy)", async () => {
    const p = rules.lbSingleInternetFacing;
    expect(await violations(p, [loadBalancer("entry"), loadBalancer("admin", { internal: true })])).toEqual([]);
    expect(await applies(p, [])).toEqual([]);
    expect(await violations(p, [loadBalancer("entry"), loadBalancer("admin", { internal: undefined })])).toEqual([
      "entry: 2 load balancers face the internet (entry, admin); only the entry may",
      "admin: 2 load balancers face the internet (entry, admin); only the entry may",
    ]);
  });

  it("alb-http-redirects-to-https (a stack policy, per load balancer)", async () => {
    const p = rules.albHttpRedirectsToHttps;
    const https = listener("https", {
      protocol: "HTTPS",
      port: 443,
      certificateArn: "arn:acm",
      defaultActions: FORWARD,
    });
    expect(
      await violations(p, [listener("http", { protocol: "HTTP", port: 80, defaultActions: REDIRECT }), https]),
    ).toEqual([]);
    // Without an HTTPS listener, HTTP forwards (no certificate configured yet).
    expect(await violations(p, [listener("http", { port: 80, defaultActions: FORWARD })])).toEqual([]);
    // Another load balancer's HTTPS listener does not count.
    expect(
      await violations(p, [
        listener("http", { protocol: "HTTP", port: 80, defaultActions: FORWARD }),
        listener("other-https", {
          protocol: "HTTPS",
          port: 443,
          loadBalancerArn: "arn:alb/other",
          defaultActions: FORWARD,
        }),
      ]),
    ).toEqual([]);
    expect(
      await violations(p, [
        listener("http", { port: 80, defaultActions: FORWARD }),
        listener(
          "http-8080",
          { protocol: "HTTP", port: 8080, defaultActions: [REDIRECT[0], FORWARD[0]] },
          T.albListener,
        ),
        https,
      ]),
    ).toEqual([
      "http: HTTP listener on port 80 does not redirect to HTTPS",
      "http-8080: HTTP listener on port 8080 does not redirect to HTTPS",
    ]);
  });
});

describe("security groups", () => {
  it("sg-world-ingress-ports", async () => {
    const p = rules.sgWorldIngressPorts;
    expect(
      await violations(p, [
        ingress("https"),
        ingress("http", { fromPort: 80, toPort: 80 }),
        ingress("http6", { fromPort: 80, toPort: 80, cidrIpv4: undefined, cidrIpv6: "::/0" }),
        // From inside the VPC any port is fine for this rule.
        ingress("redis", { fromPort: 6379, toPort: 6379, cidrIpv4: "172.20.0.0/16" }),
      ]),
    ).toEqual([]);
    expect(
      await violations(p, [
        ingress("ssh", { fromPort: 22, toPort: 22 }),
        ingress("range", { fromPort: 80, toPort: 443 }),
        ingress("all", {
          ipProtocol: "-1",
          fromPort: undefined,
          toPort: undefined,
          cidrIpv4: undefined,
          cidrIpv6: "::/0",
        }),
        ingress("udp", { ipProtocol: "udp" }),
      ]),
    ).toEqual([
      "ssh: ingress from 0.0.0.0/0 to tcp port 22: the internet may reach only tcp 80 and 443",
      "range: ingress from 0.0.0.0/0 to tcp ports 80-443: the internet may reach only tcp 80 and 443",
      "all: ingress from ::/0 to all protocols: the internet may reach only tcp 80 and 443",
      "udp: ingress from 0.0.0.0/0 to udp port 443: the internet may reach only tcp 80 and 443",
    ]);
  });

  it("sg-world-ingress-entry-only (a stack policy: the entry's group is the one its load balancer uses)", async () => {
    const p = rules.sgWorldIngressEntryOnly;
    const entry = loadBalancer("entry", { securityGroups: ["sg-entry"] });
    const internal = loadBalancer("admin", { internal: true, securityGroups: ["sg-admin"] });
    expect(
      await violations(p, [
        entry,
        internal,
        ingress("entry-https"),
        ingress("web-from-alb", {
          securityGroupId: "sg-web",
          cidrIpv4: undefined,
          referencedSecurityGroupId: "sg-entry",
        }),
      ]),
    ).toEqual([]);
    expect(
      await violations(p, [
        entry,
        internal,
        ingress("web-https", { securityGroupId: "sg-web" }),
        ingress("admin-https", { securityGroupId: "sg-admin", cidrIpv4: undefined, cidrIpv6: "::/0" }),
      ]),
    ).toEqual([
      'web-https: ingress from 0.0.0.0/0 to security group "sg-web", which no internet-facing load balancer uses',
      'admin-https: ingress from ::/0 to security group "sg-admin", which no internet-facing load balancer uses',
    ]);
    // During preview a new load balancer's groups are unknown: the rule cannot decide and skips.
    const detailed = await evaluateDetailed(
      [loadBalancer("entry", { securityGroups: [UNKNOWN_VALUE] }), ingress("web-https", { securityGroupId: "sg-web" })],
      { policies: [p] },
    );
    expect(detailed.violations).toEqual([]);
    expect(detailed.notApplicable).toEqual([
      {
        policy: p.name,
        resource: undefined,
        type: undefined,
        reason: "the security groups of load balancer entry are unknown during preview",
      },
    ]);
  });

  it("sg-rules-as-own-resources", async () => {
    const p = rules.sgRulesAsOwnResources;
    expect(await violations(p, [fixture(T.securityGroup, "web", { vpcId: "vpc-1" })])).toEqual([]);
    const inline = { protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["0.0.0.0/0"] };
    expect(
      await violations(p, [
        fixture(T.securityGroup, "web", { vpcId: "vpc-1", ingress: [inline], egress: [inline, inline] }),
        fixture(T.securityGroupRule, "legacy", { type: "ingress", securityGroupId: "sg-web", ...inline }),
      ]),
    ).toEqual([
      "web: inline ingress rules (1); use aws.vpc rule resources",
      "web: inline egress rules (2); use aws.vpc rule resources",
      "legacy: aws.ec2.SecurityGroupRule; use aws.vpc.SecurityGroupIngressRule or SecurityGroupEgressRule",
    ]);
  });

  it("sg-rule-description", async () => {
    const p = rules.sgRuleDescription;
    const egress = (description: string | undefined) =>
      fixture(T.egressRule, "egress", {
        securityGroupId: "sg-web",
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        description,
      });
    expect(await violations(p, [ingress("https"), egress("to NAT")])).toEqual([]);
    expect(await violations(p, [ingress("https", { description: " " }), egress(undefined)])).toEqual([
      "https: no description",
      "egress: no description",
    ]);
  });
});

describe("IAM", () => {
  it("iam-no-wildcard-actions: RolePolicy, Policy and a Role's inline policies; JSON strings or objects", async () => {
    const p = rules.iamNoWildcardActions;
    const fine = document(
      { Effect: "Allow", Action: ["s3:GetObject", "s3:Get*"], Resource: "arn:aws:s3:::b/*" },
      // Denying everything is fine.
      { Effect: "Deny", Action: "*", Resource: "*" },
    );
    expect(await violations(p, [rolePolicy(fine), fixture(T.policy, "p", { policy: JSON.parse(fine) })])).toEqual([]);
    expect(
      await violations(p, [
        rolePolicy(
          document(
            { Effect: "Allow", Action: "*", Resource: "arn:x" },
            { Effect: "Allow", Action: ["logs:PutLogEvents", "ecs:*"], Resource: "arn:x" },
            { Effect: "Allow", NotAction: "iam:*", Resource: "arn:x" },
          ),
        ),
        fixture(T.policy, "managed", {
          policy: { Version: "2012-10-17", Statement: { Effect: "Allow", Action: "S3:*", Resource: "arn:x" } },
        }),
        role({
          inlinePolicies: [{ name: "inline", policy: document({ Effect: "Allow", Action: "*", Resource: "*" }) }],
        }),
        rolePolicy("{not json"),
      ]),
    ).toEqual([
      'gateway-execution: statement 0 allows action "*"',
      'gateway-execution: statement 1 allows action "ecs:*"',
      "gateway-execution: statement 2 allows by NotAction",
      'managed: statement 0 allows action "S3:*"',
      'gateway-execution: inlinePolicies[0]: statement 0 allows action "*"',
      "gateway-execution: policy is not a JSON policy document with a Statement list",
    ]);
  });

  it("iam-wildcard-resource-allowlist (configurable)", async () => {
    const p = rules.iamWildcardResourceAllowlist;
    const token = { Effect: "Allow", Action: "ecr:GetAuthorizationToken", Resource: "*" };
    expect(await violations(p, [rolePolicy(document(token))])).toEqual([]);
    const logs = { Effect: "Allow", Action: ["logs:CreateLogStream", "logs:PutLogEvents"], Resource: ["*"] };
    expect(
      await violations(p, [
        rolePolicy(
          document(
            logs,
            { Effect: "Allow", Action: "s3:GetObject", NotResource: "arn:aws:s3:::private/*" },
            { Effect: "Deny", Action: "s3:*", Resource: "*" },
          ),
        ),
      ]),
    ).toEqual([
      'gateway-execution: statement 0 grants logs:CreateLogStream, logs:PutLogEvents on Resource "*"',
      "gateway-execution: statement 1 allows by NotResource",
    ]);
    // The allow-list is the policy's configuration (`--policy-pack-config`).
    const config = {
      [p.name]: { allowedActions: ["ecr:GetAuthorizationToken", "logs:CreateLogStream", "logs:PutLogEvents"] },
    };
    expect(await violations(p, [rolePolicy(document(logs))], { config })).toEqual([]);
  });

  it("iam-role-trust-ecs-tasks (every role of the stack is a task or execution role)", async () => {
    const p = rules.iamRoleTrustEcsTasks;
    const listed = document({
      Effect: "Allow",
      Principal: { Service: ["ecs-tasks.amazonaws.com"] },
      Action: ["sts:AssumeRole"],
    });
    expect(await violations(p, [role(), role({ assumeRolePolicy: JSON.parse(listed) })])).toEqual([]);
    expect(
      await violations(p, [
        role({
          assumeRolePolicy: document(
            { Effect: "Allow", Principal: { AWS: "arn:aws:iam::123456789012:root" }, Action: "sts:AssumeRole" },
            {
              Effect: "Allow",
              Principal: { Service: ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"] },
              Action: "sts:AssumeRole",
            },
            { Effect: "Allow", Principal: "*", Action: ["sts:AssumeRole", "sts:TagSession"] },
          ),
        }),
      ]),
    ).toEqual([
      'gateway-execution: trust statement 0 admits principal {"AWS":"arn:aws:iam::123456789012:root"}',
      'gateway-execution: trust statement 1 admits principal {"Service":["ecs-tasks.amazonaws.com","lambda.amazonaws.com"]}',
      'gateway-execution: trust statement 2 admits principal "*"',
      'gateway-execution: trust statement 2 allows ["sts:AssumeRole","sts:TagSession"], not only sts:AssumeRole',
    ]);
    const lambda = role({
      assumeRolePolicy: document({
        Effect: "Allow",
        Principal: { Service: "lambda.amazonaws.com" },
        Action: "sts:AssumeRole",
      }),
    });
    expect(
      await violations(p, [lambda], { config: { [p.name]: { allowedServicePrincipals: ["lambda.amazonaws.com"] } } }),
    ).toEqual([]);
  });

  it("iam-role-policies-explicit", async () => {
    const p = rules.iamRolePoliciesExplicit;
    const customer = fixture(T.rolePolicyAttachment, "own", {
      role: "gateway-execution",
      policyArn: "arn:aws:iam::123456789012:policy/chatgrid-pull",
    });
    expect(await violations(p, [role(), customer])).toEqual([]);
    expect(
      await violations(p, [
        role({
          inlinePolicies: [
            { name: "x", policy: document({ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:x" }) },
          ],
          managedPolicyArns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        }),
        fixture(T.rolePolicyAttachment, "managed", {
          role: "gateway-execution",
          policyArn: "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        }),
      ]),
    ).toEqual([
      "gateway-execution: inlinePolicies is set; use aws.iam.RolePolicy",
      "gateway-execution: managedPolicyArns is set (arn:aws:iam::aws:policy/ReadOnlyAccess); use aws.iam.RolePolicy",
      "managed: attaches the AWS-managed policy arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy; write an aws.iam.RolePolicy",
    ]);
  });
});

describe("ECR", () => {
  it("ecr-scan-on-push", async () => {
    const p = rules.ecrScanOnPush;
    expect(await violations(p, [repository("gateway")])).toEqual([]);
    expect(
      await violations(p, [
        repository("a", { imageScanningConfiguration: undefined }),
        repository("b", { imageScanningConfiguration: { scanOnPush: false } }),
      ]),
    ).toEqual([
      "a: imageScanningConfiguration.scanOnPush is not set, not true",
      "b: imageScanningConfiguration.scanOnPush is false, not true",
    ]);
  });

  it("ecr-immutable-tags", async () => {
    const p = rules.ecrImmutableTags;
    expect(await violations(p, [repository("gateway")])).toEqual([]);
    expect(
      await violations(p, [
        repository("a", { imageTagMutability: undefined }),
        repository("b", { imageTagMutability: "IMMUTABLE_WITH_EXCLUSION" }),
      ]),
    ).toEqual([
      'a: imageTagMutability is not set, not "IMMUTABLE"',
      'b: imageTagMutability is "IMMUTABLE_WITH_EXCLUSION", not "IMMUTABLE"',
    ]);
  });

  it("ecr-lifecycle-policy-per-repository (a stack policy over outputs)", async () => {
    const p = rules.ecrLifecyclePolicyPerRepository;
    expect(
      await violations(p, [repository("gateway"), lifecyclePolicy("gateway"), repository("ai"), lifecyclePolicy("ai")]),
    ).toEqual([]);
    expect(await violations(p, [repository("gateway"), lifecyclePolicy("gateway"), repository("ai")])).toEqual([
      'ai: repository "chatgrid/ai" has no lifecycle policy',
    ]);
    // Stack policies read outputs: an auto-named repository's name exists only there.
    const autoNamed = fixture(T.repository, "web", { imageTagMutability: "IMMUTABLE" }, { name: "web-1a2b3c" });
    expect(
      await violations(p, [autoNamed, fixture(T.lifecyclePolicy, "web", { repository: "web-1a2b3c", policy: "{}" })]),
    ).toEqual([]);
  });
});

describe("CloudWatch Logs, VPC, Secrets Manager", () => {
  it("log-group-retention", async () => {
    const p = rules.logGroupRetention;
    expect(await violations(p, [fixture(T.logGroup, "gateway", { retentionInDays: 30 })])).toEqual([]);
    expect(
      await violations(p, [fixture(T.logGroup, "a", {}), fixture(T.logGroup, "b", { retentionInDays: 0 })]),
    ).toEqual([
      "a: retentionInDays is not set: logs would be kept forever",
      "b: retentionInDays is 0: logs would be kept forever",
    ]);
  });

  it("vpc-dns-support-and-hostnames (DNS support is the default)", async () => {
    const p = rules.vpcDnsSupportAndHostnames;
    expect(
      await violations(p, [
        fixture(T.vpc, "vpc", { enableDnsSupport: true, enableDnsHostnames: true }),
        fixture(T.vpc, "default-support", { enableDnsHostnames: true }),
      ]),
    ).toEqual([]);
    expect(await violations(p, [fixture(T.vpc, "vpc", { enableDnsSupport: false })])).toEqual([
      "vpc: enableDnsSupport is false",
      "vpc: enableDnsHostnames is not set, not true",
    ]);
  });

  it("secretsmanager-recovery-window", async () => {
    const p = rules.secretsManagerRecoveryWindow;
    const secretWith = (days: number | undefined) =>
      fixture(T.secret, `s-${days}`, days === undefined ? {} : { recoveryWindowInDays: days });
    expect(await violations(p, [secretWith(0), secretWith(7), secretWith(30)])).toEqual([]);
    expect(await violations(p, [secretWith(undefined), secretWith(3), secretWith(31)])).toEqual([
      "s-undefined: recoveryWindowInDays is not set",
      "s-3: recoveryWindowInDays is 3, neither 0 nor 7–30",
      "s-31: recoveryWindowInDays is 31, neither 0 nor 7–30",
    ]);
  });
});
