import * as pulumi from "@pulumi/pulumi";
import { afterEach, describe, expect, it } from "vitest";
import {
  AWS_MOCKED_TYPES,
  awsMockId,
  awsMockState,
  fakeBuildDigest,
  isAwsMocked,
  MOCK_ACCOUNT,
  setMockAwsRegion,
  shortRegion,
} from "./aws-mock-state";
import { findUndefined, mockEngine, type RegisteredResource, resolved } from "./pulumi-mocks";

// The fabricated outputs, alone and through the mocked engine (the SDK classes are imported after the mocks).

afterEach(() => {
  setMockAwsRegion("us-east-1");
  pulumi.runtime.setAllConfig({});
});

const state = (type: string, name: string, inputs: Record<string, unknown> = {}) => {
  const made = awsMockState(type, name, inputs);
  if (!made) throw new Error(`no mock for ${type}`);
  return made;
};

describe("awsMockState", () => {
  it("covers every type the aws stack uses", () => {
    const types = [
      "aws:ec2/vpc:Vpc",
      "aws:ec2/subnet:Subnet",
      "aws:ec2/internetGateway:InternetGateway",
      "aws:ec2/eip:Eip",
      "aws:ec2/natGateway:NatGateway",
      "aws:ec2/routeTable:RouteTable",
      "aws:ec2/route:Route",
      "aws:ec2/routeTableAssociation:RouteTableAssociation",
      "aws:ec2/vpcEndpoint:VpcEndpoint",
      "aws:ec2/securityGroup:SecurityGroup",
      "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
      "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
      "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace",
      "aws:servicediscovery/service:Service",
      "aws:elasticache/subnetGroup:SubnetGroup",
      "aws:elasticache/parameterGroup:ParameterGroup",
      "aws:elasticache/replicationGroup:ReplicationGroup",
      "aws:secretsmanager/secret:Secret",
      "aws:secretsmanager/secretVersion:SecretVersion",
      "aws:msk/configuration:Configuration",
      "aws:msk/cluster:Cluster",
      "aws:msk/topic:Topic",
      "aws:ecr/repository:Repository",
      "aws:ecr/lifecyclePolicy:LifecyclePolicy",
      "docker-build:index:Image",
      "aws:ecs/cluster:Cluster",
      "aws:ecs/taskDefinition:TaskDefinition",
      "aws:ecs/service:Service",
      "aws:iam/role:Role",
      "aws:iam/rolePolicy:RolePolicy",
      "aws:cloudwatch/logGroup:LogGroup",
      "aws:lb/loadBalancer:LoadBalancer",
      "aws:lb/targetGroup:TargetGroup",
      "aws:lb/listener:Listener",
    ];
    for (const type of types) {
      expect(isAwsMocked(type), type).toBe(true);
      expect(awsMockState(type, "x", {}), type).toBeDefined();
      expect(awsMockId(type, "x", {}), type).toMatch(/\S/);
    }
    expect(AWS_MOCKED_TYPES).toEqual(
      expect.arrayContaining(types.filter((t) => !t.startsWith("aws:servicediscovery"))),
    );
    expect(isAwsMocked("aws:servicediscovery/httpNamespace:HttpNamespace")).toBe(true);
    // Types of the Docker stack are none of its business.
    expect(awsMockState("docker:index/container:Container", "x", {})).toBeUndefined();
    expect(awsMockId("pulumi-nodejs:dynamic/chatgrid:GeneratedSecret", "x", {})).toBeUndefined();
  });

  it("is stable per type and name, and distinct between names", () => {
    expect(awsMockId("aws:ec2/vpc:Vpc", "a", {})).toBe(awsMockId("aws:ec2/vpc:Vpc", "a", {}));
    expect(awsMockId("aws:ec2/vpc:Vpc", "a", {})).not.toBe(awsMockId("aws:ec2/vpc:Vpc", "b", {}));
    expect(awsMockId("aws:ec2/subnet:Subnet", "a", {})).toMatch(/^subnet-0[0-9a-f]{16}$/);
    expect(awsMockId("aws:ec2/securityGroup:SecurityGroup", "a", {})).toMatch(/^sg-0[0-9a-f]{16}$/);
    expect(awsMockId("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "a", {})).toMatch(/^sgr-0/);
    expect(awsMockId("aws:ec2/natGateway:NatGateway", "a", {})).toMatch(/^nat-0/);
    expect(awsMockId("aws:ec2/eip:Eip", "a", {})).toMatch(/^eipalloc-0/);
    expect(awsMockId("aws:ec2/vpcEndpoint:VpcEndpoint", "a", {})).toMatch(/^vpce-0/);
  });

  it("ECR: repositoryUrl <account>.dkr.ecr.<region>.amazonaws.com/<name>, registryId, arn", () => {
    expect(state("aws:ecr/repository:Repository", "gateway", { name: "chatgrid-gateway" })).toMatchObject({
      name: "chatgrid-gateway",
      registryId: MOCK_ACCOUNT,
      arn: "arn:aws:ecr:us-east-1:123456789012:repository/chatgrid-gateway",
      repositoryUrl: "123456789012.dkr.ecr.us-east-1.amazonaws.com/chatgrid-gateway",
    });
  });

  it("docker-build Image: a sha256 digest stable per name, ref = the first tag's repository @ digest", () => {
    const repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/chatgrid-gateway";
    const image = state("docker-build:index:Image", "gateway-image", { tags: [`${repo}:v1`, `${repo}:latest`] });
    expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.digest).toBe(fakeBuildDigest("gateway-image"));
    expect(image.digest).not.toBe(fakeBuildDigest("ai-image"));
    expect(image.ref).toBe(`${repo}@${image.digest}`);
    expect(state("docker-build:index:Image", "x", { tags: ["localhost:5000/app:1"] }).ref).toMatch(
      /^localhost:5000\/app@sha256:/,
    );
    expect(state("docker-build:index:Image", "x", {}).ref).toBe("");
  });

  it("ECS: cluster arn/name, task definition arn with revision, service id/name", () => {
    const cluster = state("aws:ecs/cluster:Cluster", "chatgrid");
    expect(cluster).toMatchObject({ arn: "arn:aws:ecs:us-east-1:123456789012:cluster/chatgrid", name: "chatgrid" });
    expect(state("aws:ecs/taskDefinition:TaskDefinition", "td", { family: "chatgrid-gateway-1" })).toMatchObject({
      arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/chatgrid-gateway-1:1",
      arnWithoutRevision: "arn:aws:ecs:us-east-1:123456789012:task-definition/chatgrid-gateway-1",
      family: "chatgrid-gateway-1",
      revision: 1,
    });
    const service = { cluster: cluster.arn, name: "gateway-1" };
    expect(awsMockId("aws:ecs/service:Service", "svc", service)).toBe(
      "arn:aws:ecs:us-east-1:123456789012:service/chatgrid/gateway-1",
    );
    expect(state("aws:ecs/service:Service", "svc", service).name).toBe("gateway-1");
  });

  it("IAM role arn:aws:iam::<account>:role/<name>, logs group arn, Secrets Manager's random suffix", () => {
    expect(state("aws:iam/role:Role", "exec").arn).toBe("arn:aws:iam::123456789012:role/exec");
    expect(state("aws:iam/role:Role", "exec", { path: "/chatgrid/" }).arn).toBe(
      "arn:aws:iam::123456789012:role/chatgrid/exec",
    );
    expect(state("aws:cloudwatch/logGroup:LogGroup", "lg", { name: "/chatgrid/web" })).toMatchObject({
      arn: "arn:aws:logs:us-east-1:123456789012:log-group:/chatgrid/web",
      name: "/chatgrid/web",
    });
    expect(state("aws:secretsmanager/secret:Secret", "redis-url").arn).toMatch(
      /^arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-url-[0-9a-f]{6}$/,
    );
  });

  it("ALB: dnsName <name>-123456789.<region>.elb.amazonaws.com, zoneId, arnSuffix; TG and listener ARNs", () => {
    const lb = state("aws:lb/loadBalancer:LoadBalancer", "entry", { name: "chatgrid" });
    expect(lb.dnsName).toBe("chatgrid-123456789.us-east-1.elb.amazonaws.com");
    expect(lb.zoneId).toBe("Z35SXDOTRQ7X7K");
    expect(lb.arnSuffix).toMatch(/^app\/chatgrid\/[0-9a-f]{16}$/);
    expect(lb.arn).toBe(`arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/${lb.arnSuffix}`);
    const tg = state("aws:lb/targetGroup:TargetGroup", "web", { name: "chatgrid-web" });
    expect(tg.arnSuffix).toMatch(/^targetgroup\/chatgrid-web\/[0-9a-f]{16}$/);
    expect(tg.arn).toBe(`arn:aws:elasticloadbalancing:us-east-1:123456789012:${tg.arnSuffix}`);
    const listener = state("aws:lb/listener:Listener", "http", { loadBalancerArn: lb.arn });
    expect(listener.arn).toMatch(
      new RegExp(`^arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/${lb.arnSuffix}/[0-9a-f]{16}$`),
    );
  });

  it("ElastiCache: primary and reader endpoints for cluster mode disabled, the configuration endpoint only when enabled", () => {
    const group = state("aws:elasticache/replicationGroup:ReplicationGroup", "Cache", { numCacheClusters: 2 });
    expect(group.primaryEndpointAddress).toMatch(/^master\.cache\.[0-9a-f]{6}\.use1\.cache\.amazonaws\.com$/);
    expect(group.readerEndpointAddress).toMatch(/^replica\.cache\.[0-9a-f]{6}\.use1\.cache\.amazonaws\.com$/);
    expect(group.arn).toBe("arn:aws:elasticache:us-east-1:123456789012:replicationgroup:cache");
    expect(group.memberClusters).toEqual(["cache-001", "cache-002"]);
    expect(group.configurationEndpointAddress).toBeUndefined();
    const sharded = state("aws:elasticache/replicationGroup:ReplicationGroup", "c", { clusterMode: "enabled" });
    expect(sharded.primaryEndpointAddress).toBeUndefined();
    expect(sharded.configurationEndpointAddress).toMatch(/^clustercfg\.c\./);
    expect(shortRegion("eu-west-2")).toBe("euw2");
    expect(shortRegion("us-gov-west-1")).toBe("usgw1");
  });

  it("MSK: the cluster ARN and the bootstrap strings its encryption and auth settings yield", () => {
    const iam = {
      numberOfBrokerNodes: 2,
      encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
      clientAuthentication: { sasl: { iam: true }, unauthenticated: false },
    };
    const cluster = state("aws:msk/cluster:Cluster", "events", iam);
    expect(cluster.arn).toMatch(
      /^arn:aws:kafka:us-east-1:123456789012:cluster\/events\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-2$/,
    );
    expect((cluster.bootstrapBrokersSaslIam as string).split(",")).toEqual([
      expect.stringMatching(/^b-1\.events\.[0-9a-f]{6}\.c2\.kafka\.us-east-1\.amazonaws\.com:9098$/),
      expect.stringMatching(/^b-2\.events\.[0-9a-f]{6}\.c2\.kafka\.us-east-1\.amazonaws\.com:9098$/),
    ]);
    expect(cluster.bootstrapBrokersTls).toMatch(/:9094,/);
    expect(cluster.bootstrapBrokers).toBe("");
    expect(cluster.bootstrapBrokersSaslScram).toBe("");
    expect(cluster.zookeeperConnectString).toBe("");
    expect(cluster.currentVersion).toMatch(/^K[0-9A-F]{13}$/);
    // IAM off → no IAM bootstrap string, as MSK would report it.
    expect(
      state("aws:msk/cluster:Cluster", "e", { ...iam, clientAuthentication: { unauthenticated: true } }),
    ).toMatchObject({ bootstrapBrokersSaslIam: "" });
    expect(state("aws:msk/configuration:Configuration", "cfg")).toMatchObject({
      latestRevision: 1,
      arn: expect.stringMatching(/^arn:aws:kafka:us-east-1:123456789012:configuration\/cfg\//),
    });
    expect(state("aws:msk/topic:Topic", "t", { clusterArn: cluster.arn, name: "chatgrid.events" }).arn).toBe(
      `${(cluster.arn as string).replace(":cluster/", ":topic/")}/chatgrid.events`,
    );
  });

  it("Cloud Map: namespace and service ids and ARNs", () => {
    const ns = "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace";
    const id = awsMockId(ns, "names", {});
    expect(id).toMatch(/^ns-[0-9a-f]{16}$/);
    expect(state(ns, "names").arn).toBe(`arn:aws:servicediscovery:us-east-1:123456789012:namespace/${id}`);
    const service = "aws:servicediscovery/service:Service";
    expect(state(service, "ai-1").arn).toBe(
      `arn:aws:servicediscovery:us-east-1:123456789012:service/${awsMockId(service, "ai-1", {})}`,
    );
  });

  it("takes the region from the resource's input, else aws:region, else the module's", () => {
    const arn = (inputs: Record<string, unknown> = {}) =>
      state("aws:iam/role:Role", "r", inputs) && state("aws:ecs/cluster:Cluster", "c", inputs).arn;
    expect(arn()).toBe("arn:aws:ecs:us-east-1:123456789012:cluster/c");
    setMockAwsRegion("eu-central-1");
    expect(arn()).toBe("arn:aws:ecs:eu-central-1:123456789012:cluster/c");
    pulumi.runtime.setAllConfig({ "aws:region": "ap-southeast-2" });
    expect(arn()).toBe("arn:aws:ecs:ap-southeast-2:123456789012:cluster/c");
    expect(arn({ region: "sa-east-1" })).toBe("arn:aws:ecs:sa-east-1:123456789012:cluster/c");
  });
});

describe("the mocked engine with the AWS state", () => {
  it("hands the fabricated outputs and ids to the SDK's resources", async () => {
    const engine = await mockEngine("aws");
    const aws = await import("@pulumi/aws");
    const dockerBuild = await import("@pulumi/docker-build");
    const repo = new aws.ecr.Repository("gateway", { name: "chatgrid-gateway" });
    const image = new dockerBuild.Image("gateway", {
      push: true,
      tags: [pulumi.interpolate`${repo.repositoryUrl}:v1`],
      context: { location: "." },
    });
    const lb = new aws.lb.LoadBalancer("entry", { name: "chatgrid", loadBalancerType: "application" });
    const vpc = new aws.ec2.Vpc("vpc", { cidrBlock: "172.20.0.0/16" });
    expect(await resolved(repo.repositoryUrl)).toBe("123456789012.dkr.ecr.us-east-1.amazonaws.com/chatgrid-gateway");
    expect(await resolved(image.ref)).toBe(
      `123456789012.dkr.ecr.us-east-1.amazonaws.com/chatgrid-gateway@${fakeBuildDigest("gateway")}`,
    );
    expect(await resolved(lb.dnsName)).toBe("chatgrid-123456789.us-east-1.elb.amazonaws.com");
    expect(await resolved(lb.id)).toBe(await resolved(lb.arn));
    expect(await resolved(vpc.id)).toBe(awsMockId("aws:ec2/vpc:Vpc", "vpc", {}));
    // Inputs are still echoed; types the module does not know keep the old behaviour.
    expect(await resolved(vpc.cidrBlock)).toBe("172.20.0.0/16");
    await engine.settle();
    expect(findUndefined(engine.resources)).toEqual([]);
  });

  it("answers the invokes a test allows, and refuses every other one", async () => {
    const engine = await mockEngine("aws", {
      invokes: {
        "aws:ecr/getAuthorizationToken:getAuthorizationToken": () => ({
          userName: "AWS",
          password: "fake-token",
          proxyEndpoint: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
        }),
      },
    });
    const aws = await import("@pulumi/aws");
    const token = await aws.ecr.getAuthorizationToken({});
    expect(token).toMatchObject({ userName: "AWS", password: "fake-token" });
    // The mock's message does not survive the SDK's invoke path (it rejects with an empty Error): assert the rejection.
    await expect(aws.getRegion({})).rejects.toBeInstanceOf(Error);
    expect(engine.invokes).toEqual([
      "aws:ecr/getAuthorizationToken:getAuthorizationToken",
      "aws:index/getRegion:getRegion",
    ]);
    // Without options (the existing callers), every invoke is refused.
    const plain = await mockEngine("aws");
    await expect(aws.ecr.getAuthorizationToken({})).rejects.toBeInstanceOf(Error);
    expect(plain.invokes).toEqual(["aws:ecr/getAuthorizationToken:getAuthorizationToken"]);
  });
});

describe("findUndefined", () => {
  const resource = (inputs: Record<string, unknown>): RegisteredResource => ({
    type: "t:x:Y",
    name: "r",
    inputs,
    custom: true,
    urn: "",
    secretOutputs: [],
    dependencies: [],
  });
  const SECRET = "4dabf18193072939515e22adb298388d";
  const secretSig = "1b47061264138c4ac30d75fd1eb44270";

  it("lists every string containing 'undefined', with its path, secrets and nested values included", () => {
    expect(
      findUndefined([
        resource({
          url: "rediss://:undefined@undefined:6379",
          ok: "fine",
          list: ["a", { deep: "x-undefined" }],
          secret: { [SECRET]: secretSig, value: "tok undefined" },
          json: JSON.stringify({ image: "undefined@sha256:1" }),
          notAString: undefined,
          number: 1,
        }),
      ]),
    ).toEqual(["t:x:Y r: url", "t:x:Y r: list[1].deep", "t:x:Y r: secret", "t:x:Y r: json"]);
  });

  it("is empty for clean inputs, and skips a dynamic provider's serialized code", () => {
    expect(findUndefined([resource({ a: "b", __provider: "exports.handler = x === undefined" })])).toEqual([]);
  });
});
