import { describe, expect, it } from "vitest";
import { findUndefined, mockEngine, type RegisteredResource, resolved } from "../../testing/pulumi-mocks";
import { type AwsKafkaArgs, groupArnPrefixOf, replication, serverProperties, topicArnOf } from "./kafka";

// The component module is imported only after the mocks are installed (a static import would build nothing); the
// pure functions above need no engine.

const T = {
  configuration: "aws:msk/configuration:Configuration",
  cluster: "aws:msk/cluster:Cluster",
  topic: "aws:msk/topic:Topic",
} as const;

const BASE: AwsKafkaArgs = {
  subnetIds: ["subnet-0aaa", "subnet-0bbb"],
  securityGroupId: "sg-0kafka",
  brokerType: "kafka.t3.small",
  topic: "chatgrid.events",
  partitions: 3,
  volumeSize: 10,
  tags: { project: "chatgrid" },
};

async function build(overrides: Partial<AwsKafkaArgs> = {}) {
  const engine = await mockEngine("aws");
  const { AwsKafka } = await import("./kafka");
  const kafka = new AwsKafka("events", { ...BASE, ...overrides });
  const outputs = {
    clusterArn: await resolved(kafka.clusterArn),
    bootstrapBrokers: await resolved(kafka.bootstrapBrokers),
    topicArn: await resolved(kafka.topicArn),
    groupArnPrefix: await resolved(kafka.groupArnPrefix),
  };
  await engine.settle();
  const one = (type: string): RegisteredResource => {
    const found = engine.resources.filter((r) => r.type === type);
    if (found.length !== 1) throw new Error(`${found.length} of ${type}`);
    return found[0]!;
  };
  return { engine, kafka, outputs, one };
}

describe("the MSK ARN and replication helpers", () => {
  const cluster = "arn:aws:kafka:us-east-1:123456789012:cluster/events-1a2b3c4/0b5c1d2e-3f40-4a5b-9c6d-7e8f90a1b2c3-2";

  it("derive the topic ARN from the cluster ARN (cluster/<name>/<uuid> → topic/<name>/<uuid>/<topic>)", () => {
    expect(topicArnOf(cluster, "chatgrid.events")).toBe(
      "arn:aws:kafka:us-east-1:123456789012:topic/events-1a2b3c4/0b5c1d2e-3f40-4a5b-9c6d-7e8f90a1b2c3-2/chatgrid.events",
    );
    expect(topicArnOf("arn:aws-cn:kafka:cn-north-1:210987654321:cluster/x/uuid-s3", "t")).toBe(
      "arn:aws-cn:kafka:cn-north-1:210987654321:topic/x/uuid-s3/t",
    );
    expect(groupArnPrefixOf(cluster)).toBe(
      "arn:aws:kafka:us-east-1:123456789012:group/events-1a2b3c4/0b5c1d2e-3f40-4a5b-9c6d-7e8f90a1b2c3-2/",
    );
  });

  it.each([
    "arn:aws:kafka:us-east-1:123456789012:topic/x/uuid/t",
    "arn:aws:kafka:us-east-1:1234:cluster/x/uuid",
    "arn:aws:kafka:us-east-1:123456789012:cluster/x",
    "not an arn",
  ])("refuse %s", (arn) => {
    expect(() => topicArnOf(arn, "t")).toThrow(
      `AwsKafka: "${arn}" is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)`,
    );
  });

  it("replicate to every broker (at most 3) and need all but one in sync", () => {
    expect(replication(2)).toEqual({ replicationFactor: 2, minInsyncReplicas: 1 });
    expect(replication(3)).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(replication(6)).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(replication(1)).toEqual({ replicationFactor: 1, minInsyncReplicas: 1 });
  });

  it("write the broker configuration", () => {
    expect(serverProperties(2, 3)).toBe(
      "auto.create.topics.enable=false\ndefault.replication.factor=2\nmin.insync.replicas=1\nnum.partitions=3",
    );
  });
});

describe("AwsKafka", () => {
  it("an MSK configuration: no auto-created topics, RF 2, min ISR 1, the partitions, for the cluster's version", async () => {
    const built = await build();
    const configuration = built.one(T.configuration);
    expect(configuration.name).toBe("events");
    expect(configuration.inputs.kafkaVersions).toEqual(["3.9.x"]);
    expect((configuration.inputs.serverProperties as string).split("\n")).toEqual([
      "auto.create.topics.enable=false",
      "default.replication.factor=2",
      "min.insync.replicas=1",
      "num.partitions=3",
    ]);
  });

  it("a cluster with one broker per data subnet, TLS everywhere, IAM auth only, on the configuration's revision", async () => {
    const built = await build();
    const cluster = built.one(T.cluster);
    const configuration = built.one(T.configuration);
    expect(cluster.inputs).toMatchObject({
      kafkaVersion: "3.9.x",
      numberOfBrokerNodes: 2,
      brokerNodeGroupInfo: {
        instanceType: "kafka.t3.small",
        clientSubnets: ["subnet-0aaa", "subnet-0bbb"],
        securityGroups: ["sg-0kafka"],
        storageInfo: { ebsStorageInfo: { volumeSize: 10 } },
      },
      encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
      clientAuthentication: { sasl: { iam: true }, unauthenticated: false },
      enhancedMonitoring: "DEFAULT",
    });
    const auth = cluster.inputs.clientAuthentication as Record<string, unknown>;
    expect(auth.tls).toBeUndefined();
    expect((auth.sasl as Record<string, unknown>).scram).toBeUndefined();
    expect(cluster.inputs.configurationInfo).toEqual({
      arn: expect.stringMatching(/^arn:aws:kafka:us-east-1:123456789012:configuration\/events\//),
      revision: 1,
    });
    // The configuration's ARN is the one the mocked engine gave the configuration resource.
    expect((cluster.inputs.configurationInfo as { arn: string }).arn).toContain(`configuration/${configuration.name}/`);
    // MSK: the broker count is a multiple of the client subnets.
    const subnets = (cluster.inputs.brokerNodeGroupInfo as { clientSubnets: string[] }).clientSubnets;
    expect((cluster.inputs.numberOfBrokerNodes as number) % subnets.length).toBe(0);
  });

  it("owns the topic: RF = brokers, min ISR explicit, the partitions", async () => {
    const built = await build();
    const topic = built.one(T.topic);
    expect(topic.name).toBe("events-topic");
    expect(topic.inputs).toMatchObject({
      clusterArn: built.outputs.clusterArn,
      name: "chatgrid.events",
      partitionCount: 3,
      replicationFactor: 2,
    });
    expect(JSON.parse(topic.inputs.configs as string)).toEqual({ "min.insync.replicas": "1" });
  });

  it("outputs the SASL/IAM bootstrap brokers (9098), and topic/group ARNs derived from the cluster ARN", async () => {
    const built = await build();
    const { clusterArn, bootstrapBrokers, topicArn, groupArnPrefix } = built.outputs;
    const match = /^arn:aws:kafka:us-east-1:123456789012:cluster\/events\/([0-9a-f-]+-2)$/.exec(clusterArn);
    expect(match).not.toBeNull();
    const brokers = bootstrapBrokers.split(",");
    expect(brokers).toHaveLength(2);
    for (const [i, broker] of brokers.entries()) {
      expect(broker).toMatch(
        new RegExp(`^b-${i + 1}\\.events\\.[0-9a-f]{6}\\.c2\\.kafka\\.us-east-1\\.amazonaws\\.com:9098$`),
      );
    }
    expect(topicArn).toBe(`arn:aws:kafka:us-east-1:123456789012:topic/events/${match![1]}/chatgrid.events`);
    expect(groupArnPrefix).toBe(`arn:aws:kafka:us-east-1:123456789012:group/events/${match![1]}/`);
    // The mock derives the topic resource's own ARN independently: both agree.
    expect(topicArn).toBe(await resolved(built.kafka.topicResource.arn));
    expect(built.kafka.topic).toBe("chatgrid.events");
  });

  it("three zones: three brokers, RF 3, min ISR 2", async () => {
    const built = await build({
      subnetIds: ["subnet-0a", "subnet-0b", "subnet-0c"],
      kafkaVersion: "3.8.x",
      partitions: 6,
    });
    expect(built.one(T.cluster).inputs).toMatchObject({ numberOfBrokerNodes: 3, kafkaVersion: "3.8.x" });
    expect(built.one(T.configuration).inputs).toMatchObject({
      kafkaVersions: ["3.8.x"],
      serverProperties:
        "auto.create.topics.enable=false\ndefault.replication.factor=3\nmin.insync.replicas=2\nnum.partitions=6",
    });
    expect(built.one(T.topic).inputs).toMatchObject({ replicationFactor: 3, partitionCount: 6 });
    expect(built.outputs.bootstrapBrokers.split(",")).toHaveLength(3);
    expect([built.kafka.brokerCount, built.kafka.replicationFactor, built.kafka.minInsyncReplicas]).toEqual([3, 3, 2]);
  });

  it("tags the cluster (configuration and topic take none); every child is parented; no invoke; no input contains 'undefined'", async () => {
    const built = await build();
    expect(built.one(T.cluster).inputs.tags).toEqual({
      project: "chatgrid",
      Name: "events",
      "chatgrid:component": "chatgrid:aws:Kafka",
    });
    for (const resource of built.engine.resources.filter((r) => r.custom)) {
      expect(resource.urn).toContain("::chatgrid:aws:Kafka$");
    }
    expect(built.engine.resources).toHaveLength(4);
    expect(findUndefined(built.engine.resources)).toEqual([]);
    expect(built.engine.invokes).toEqual([]);
  });

  it.each<[Partial<AwsKafkaArgs>, string]>([
    [{ subnetIds: ["subnet-0a"] }, "AwsKafka: subnetIds needs 2 or 3 subnets (one broker per zone), got 1"],
    [{ subnetIds: ["a", "b", "c", "d"] }, "AwsKafka: subnetIds needs 2 or 3 subnets (one broker per zone), got 4"],
    [
      { brokerType: "t3.small" },
      'AwsKafka: brokerType must be an MSK broker type starting with "kafka." (e.g. kafka.t3.small), got "t3.small"',
    ],
    [{ kafkaVersion: "3.9" }, 'AwsKafka: kafkaVersion must be an MSK version like 3.9.x or 3.6.0, got "3.9"'],
    [
      { topic: "chat events" },
      'AwsKafka: topic must be a Kafka topic name (letters, digits, ".", "_", "-"), got "chat events"',
    ],
    [{ topic: ".." }, 'AwsKafka: topic must be a Kafka topic name (letters, digits, ".", "_", "-"), got ".."'],
    [{ partitions: 0 }, "AwsKafka: partitions must be a whole number from 1 to 1000, got 0"],
    [{ volumeSize: 0.5 }, "AwsKafka: volumeSize must be a whole number of GiB from 1 to 16384, got 0.5"],
    [{ tags: { Name: "x" } }, 'AwsKafka: tag "Name" is set by the component'],
  ])("refuses %j before registering anything", async (overrides, message) => {
    const engine = await mockEngine("aws");
    const { AwsKafka } = await import("./kafka");
    expect(() => new AwsKafka("events", { ...BASE, ...overrides })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it("refuses a name MSK cannot take", async () => {
    const engine = await mockEngine("aws");
    const { AwsKafka } = await import("./kafka");
    expect(() => new AwsKafka("1events", BASE)).toThrow(
      'AwsKafka: name "1events" must start with a letter, use letters, digits and hyphens, and have at most 56 characters',
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it.each(["3.9.x", "3.8.x", "4.0.x", "3.6.0", "3.7.x.kraft", "2.8.2-tiered"])("accepts kafkaVersion %s", async (v) => {
    await mockEngine("aws");
    const { AwsKafka } = await import("./kafka");
    expect(() => new AwsKafka("events", { ...BASE, kafkaVersion: v })).not.toThrow();
  });
});
