import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { awsMockId, setMockAwsRegion } from "../../testing/aws-mock-state";
import {
  fakeHexSecret,
  findUndefined,
  mockEngine,
  type RegisteredResource,
  resolved,
} from "../../testing/pulumi-mocks";
import type { AwsRedisArgs } from "./redis";

// The component module is imported only after the mocks are installed (a static import would build nothing).

const T = {
  subnetGroup: "aws:elasticache/subnetGroup:SubnetGroup",
  parameterGroup: "aws:elasticache/parameterGroup:ParameterGroup",
  group: "aws:elasticache/replicationGroup:ReplicationGroup",
  secret: "aws:secretsmanager/secret:Secret",
  version: "aws:secretsmanager/secretVersion:SecretVersion",
  generated: "pulumi-nodejs:dynamic/chatgrid:GeneratedSecret",
} as const;
/** What the mocked GeneratedSecret "draws" for the AUTH token (infra/testing/pulumi-mocks.ts). */
const TOKEN = fakeHexSecret("cache-auth-token");

const BASE: AwsRedisArgs = {
  subnetIds: ["subnet-0aaa", "subnet-0bbb"],
  securityGroupId: "sg-0redis",
  engine: "valkey",
  nodeType: "cache.t4g.small",
  secretRecoveryWindowDays: 0,
  tags: { project: "chatgrid" },
};

/** How a secret input reaches the engine: wrapped, so state and diffs never show it. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const isSecret = (value: unknown): value is { value: unknown } =>
  typeof value === "object" && value !== null && SECRET_SIG in value;
/** Every string in the inputs that is NOT inside a secret: what state and `pulumi preview` show in plain text. */
const plainStrings = (value: unknown): string[] => {
  if (isSecret(value)) return [];
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(plainStrings);
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(plainStrings);
  return [];
};

async function build(overrides: Partial<AwsRedisArgs> = {}) {
  const engine = await mockEngine("aws");
  const { AwsRedis } = await import("./redis");
  const redis = new AwsRedis("cache", { ...BASE, ...overrides });
  const outputs = {
    primaryEndpoint: await resolved(redis.primaryEndpoint),
    urlSecretArn: await resolved(redis.urlSecretArn),
    primaryIsSecret: await pulumi.isSecret(redis.primaryEndpoint),
  };
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  const one = (type: string): RegisteredResource => {
    const found = of(type);
    if (found.length !== 1) throw new Error(`${found.length} of ${type}`);
    return found[0]!;
  };
  return { engine, redis, outputs, of, one };
}

describe("AwsRedis", () => {
  it("a replication group with cluster mode disabled, 2 nodes, failover and Multi-AZ", async () => {
    const built = await build();
    const group = built.one(T.group);
    expect(group.name).toBe("cache");
    expect(group.inputs).toMatchObject({
      engine: "valkey",
      engineVersion: "8.0",
      nodeType: "cache.t4g.small",
      clusterMode: "disabled",
      numCacheClusters: 2,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      port: 6379,
      securityGroupIds: ["sg-0redis"],
      snapshotRetentionLimit: 1,
      autoMinorVersionUpgrade: true,
      authTokenUpdateStrategy: "ROTATE",
    });
    // Cluster mode's shard settings are absent (a single shard; the broker's scripts need one slot space).
    for (const key of ["numNodeGroups", "replicasPerNodeGroup", "nodeGroupConfigurations"]) {
      expect(group.inputs[key], key).toBeUndefined();
    }
    expect(group.inputs.replicationGroupId).toBeUndefined();
  });

  it("encrypts in transit (required) and at rest, with an AUTH token that is a secret", async () => {
    const built = await build();
    const group = built.one(T.group);
    expect(group.inputs).toMatchObject({
      transitEncryptionEnabled: true,
      transitEncryptionMode: "required",
      atRestEncryptionEnabled: true,
    });
    expect(isSecret(group.inputs.authToken)).toBe(true);
    const token = (group.inputs.authToken as { value: string }).value;
    expect(token).toBe(TOKEN);
    // ElastiCache: 16–128 printable characters, only alphanumerics and !&#$^<>- besides.
    expect(token).toMatch(/^[A-Za-z0-9!&#$^<>-]{16,128}$/);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const generated = built.one(T.generated);
    expect(generated.name).toBe("cache-auth-token");
    expect(generated.inputs).toMatchObject({ byteLength: 32, encoding: "hex" });
    expect(generated.secretOutputs).toEqual(["value"]);
  });

  it("never shows the token in plain text anywhere in the graph", async () => {
    const built = await build();
    for (const resource of built.engine.resources) {
      for (const text of plainStrings(resource.inputs)) {
        expect(text.includes(TOKEN), `${resource.type} ${resource.name}`).toBe(false);
      }
    }
    expect(JSON.stringify(built.outputs)).not.toContain(TOKEN);
  });

  it("uses a subnet group over the data subnets and a parameter group of the engine's family", async () => {
    const built = await build();
    const subnetGroup = built.one(T.subnetGroup);
    expect(subnetGroup.inputs.subnetIds).toEqual(["subnet-0aaa", "subnet-0bbb"]);
    const parameterGroup = built.one(T.parameterGroup);
    expect(parameterGroup.inputs.family).toBe("valkey8");
    expect(parameterGroup.inputs.parameters).toEqual([
      { name: "maxmemory-policy", value: "volatile-lru" },
      { name: "reserved-memory-percent", value: "30" },
    ]);
    const group = built.one(T.group);
    expect(group.inputs.subnetGroupName).toBe(awsMockId(T.subnetGroup, "cache", {}));
    expect(group.inputs.parameterGroupName).toBe(awsMockId(T.parameterGroup, "cache", {}));
    expect(built.redis.family).toBe("valkey8");
  });

  it("stores rediss://:<token>@<primary endpoint>:6379 in a Secrets Manager secret, as a secret", async () => {
    const built = await build();
    expect(built.outputs.primaryEndpoint).toMatch(/^master\.cache\.[0-9a-f]{6}\.use1\.cache\.amazonaws\.com$/);
    expect(built.outputs.primaryIsSecret).toBe(false);
    const secret = built.one(T.secret);
    expect(secret.name).toBe("cache-url");
    expect(secret.inputs.recoveryWindowInDays).toBe(0);
    const version = built.one(T.version);
    expect(version.inputs.secretId).toBe(awsMockId(T.secret, "cache-url", {}));
    expect(isSecret(version.inputs.secretString)).toBe(true);
    expect((version.inputs.secretString as { value: string }).value).toBe(
      `rediss://:${TOKEN}@${built.outputs.primaryEndpoint}:6379`,
    );
    expect(built.outputs.urlSecretArn).toMatch(
      /^arn:aws:secretsmanager:us-east-1:123456789012:secret:cache-url-[0-9a-f]{6}$/,
    );
    expect(built.redis.port).toBe(6379);
  });

  it("the region of the endpoints and ARNs follows the mock's region", async () => {
    setMockAwsRegion("eu-west-2");
    try {
      const built = await build({ secretRecoveryWindowDays: 7 });
      expect(built.outputs.primaryEndpoint).toMatch(/\.euw2\.cache\.amazonaws\.com$/);
      expect(built.outputs.urlSecretArn).toMatch(/^arn:aws:secretsmanager:eu-west-2:123456789012:secret:/);
      expect(built.one(T.secret).inputs.recoveryWindowInDays).toBe(7);
    } finally {
      setMockAwsRegion("us-east-1");
    }
  });

  it.each([
    ["valkey", undefined, "8.0", "valkey8"],
    ["valkey", "8.1", "8.1", "valkey8"],
    ["valkey", "7.2", "7.2", "valkey7"],
    ["redis", undefined, "7.1", "redis7"],
    ["redis", "7.0", "7.0", "redis7"],
  ] as const)("%s %s → engineVersion %s, family %s", async (engine, engineVersion, version, family) => {
    const built = await build({ engine, engineVersion });
    expect(built.one(T.group).inputs).toMatchObject({ engine, engineVersion: version });
    expect(built.one(T.parameterGroup).inputs.family).toBe(family);
  });

  it("tags every taggable resource; every child is parented; no invoke; no input contains 'undefined'", async () => {
    const built = await build();
    for (const type of [T.subnetGroup, T.parameterGroup, T.group, T.secret]) {
      const resource = built.one(type);
      expect(resource.inputs.tags, type).toMatchObject({
        project: "chatgrid",
        Name: resource.name,
        "chatgrid:component": "chatgrid:aws:Redis",
      });
    }
    for (const resource of built.engine.resources.filter((r) => r.custom)) {
      expect(resource.urn).toContain("::chatgrid:aws:Redis$");
    }
    expect(built.engine.resources).toHaveLength(7);
    expect(findUndefined(built.engine.resources)).toEqual([]);
    expect(built.engine.invokes).toEqual([]);
  });

  it.each<[Partial<AwsRedisArgs>, string]>([
    [{ engine: "memcached" as "redis" }, 'AwsRedis: engine must be "valkey" or "redis", got "memcached"'],
    [
      { engineVersion: "9.0" },
      'AwsRedis: engineVersion "9.0" is not one this component supports for valkey (7.2 or 8.x)',
    ],
    [
      { engine: "redis", engineVersion: "6.2" },
      'AwsRedis: engineVersion "6.2" is not one this component supports for redis (7.x)',
    ],
    [
      { nodeType: "t4g.small" },
      'AwsRedis: nodeType must be an ElastiCache node type starting with "cache." (e.g. cache.t4g.small), got "t4g.small"',
    ],
    [
      { subnetIds: ["subnet-0aaa"] },
      "AwsRedis: subnetIds needs at least 2 subnets (the replica is in another zone), got 1",
    ],
    [
      { secretRecoveryWindowDays: 3 },
      "AwsRedis: secretRecoveryWindowDays must be 0 or a whole number from 7 to 30, got 3",
    ],
    [
      { secretRecoveryWindowDays: 31 },
      "AwsRedis: secretRecoveryWindowDays must be 0 or a whole number from 7 to 30, got 31",
    ],
    [{ snapshotRetentionDays: 0 }, "AwsRedis: snapshotRetentionDays must be a whole number from 1 to 35, got 0"],
    [{ tags: { "aws:x": "y" } }, 'AwsRedis: tag "aws:x" uses the prefix "aws:", which AWS reserves'],
  ])("refuses %j before registering anything", async (overrides, message) => {
    const engine = await mockEngine("aws");
    const { AwsRedis } = await import("./redis");
    expect(() => new AwsRedis("cache", { ...BASE, ...overrides })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it.each(["Cache", "1cache", "cache--x", "cache-", "c".repeat(33)])("refuses the name %s", async (name) => {
    const engine = await mockEngine("aws");
    const { AwsRedis } = await import("./redis");
    expect(() => new AwsRedis(name, BASE)).toThrow(
      `AwsRedis: name "${name}" must start with a letter, use lowercase letters, digits and single hyphens, and have at most 32 characters`,
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it("accepts names of 1 and 32 characters", async () => {
    await mockEngine("aws");
    const { AwsRedis } = await import("./redis");
    expect(() => new AwsRedis("c", BASE)).not.toThrow();
    expect(() => new AwsRedis(`c${"a".repeat(31)}`, BASE)).not.toThrow();
  });
});
