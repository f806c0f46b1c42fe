import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { awsTags, requireTags } from "./network";

// MSK provisioned for the event stream (docs/aws.md "Kafka"): TLS everywhere, IAM auth only (port 9098), the topic
// owned by the program (auto-create is off), and a replication that survives one broker down with acks=-1.

export const DEFAULT_KAFKA_VERSION = "3.9.x";
export const MSK_IAM_PORT = 9098;

export interface AwsKafkaArgs {
  /** The private data subnets, 2 or 3 zones: one broker per subnet. */
  subnetIds: pulumi.Input<string>[];
  /** The kafka tier's group (AwsSecurityGroups.ids.kafka). */
  securityGroupId: pulumi.Input<string>;
  /** An MSK broker type, e.g. kafka.t3.small. */
  brokerType: string;
  /** An MSK Kafka version string (default "3.9.x"; MSK lists 3.8.x as recommended, 3.9.x, 4.0.x, …). */
  kafkaVersion?: string;
  /** The events topic, e.g. "chatgrid.events". */
  topic: string;
  partitions: number;
  /** EBS volume per broker, GiB (1–16384). */
  volumeSize: number;
  tags?: Record<string, string>;
}

const TYPE = "chatgrid:aws:Kafka";

/** Replication of a cluster of `brokers`: RF = brokers (at most 3), min ISR = RF − 1 (at least 1). */
export function replication(brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = Math.min(brokers, 3);
  return { replicationFactor, minInsyncReplicas: Math.max(1, replicationFactor - 1) };
}

/** The broker configuration (`server.properties` lines) the cluster runs with. */
export function serverProperties(brokers: number, partitions: number): string {
  const { replicationFactor, minInsyncReplicas } = replication(brokers);
  return [
    "auto.create.topics.enable=false",
    `default.replication.factor=${replicationFactor}`,
    `min.insync.replicas=${minInsyncReplicas}`,
    `num.partitions=${partitions}`,
  ].join("\n");
}

const CLUSTER_ARN = /^arn:(aws[a-z-]*):kafka:([a-z0-9-]+):(\d{12}):cluster\/([^/]+)\/([^/]+)$/;

function parseClusterArn(clusterArn: string): RegExpExecArray {
  const match = CLUSTER_ARN.exec(clusterArn);
  if (!match) {
    throw new Error(
      `AwsKafka: "${clusterArn}" is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)`,
    );
  }
  return match;
}

/**
 * The IAM resource ARN of a topic, from its cluster's ARN, by string transformation alone (no invoke):
 * `arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>` → `…:topic/<name>/<uuid>/<topic>`.
 */
export function topicArnOf(clusterArn: string, topic: string): string {
  const [, partition, region, account, cluster, uuid] = parseClusterArn(clusterArn);
  return `arn:${partition}:kafka:${region}:${account}:topic/${cluster}/${uuid}/${topic}`;
}

/** The prefix of the cluster's consumer-group ARNs (`…:group/<name>/<uuid>/`); append a group name or `*`. */
export function groupArnPrefixOf(clusterArn: string): string {
  const [, partition, region, account, cluster, uuid] = parseClusterArn(clusterArn);
  return `arn:${partition}:kafka:${region}:${account}:group/${cluster}/${uuid}/`;
}

function validate(name: string, args: AwsKafkaArgs): { version: string; brokers: number } {
  // The cluster name is the name plus 8 autonaming characters; MSK allows 64.
  if (!/^[a-zA-Z][a-zA-Z0-9-]{0,55}$/.test(name)) {
    throw new Error(
      `AwsKafka: name "${name}" must start with a letter, use letters, digits and hyphens, and have at most 56 characters`,
    );
  }
  const subnets = args.subnetIds ?? [];
  if (subnets.length < 2 || subnets.length > 3) {
    throw new Error(`AwsKafka: subnetIds needs 2 or 3 subnets (one broker per zone), got ${subnets.length}`);
  }
  if (typeof args.brokerType !== "string" || !/^kafka\.[a-z0-9]+\.[a-z0-9]+$/.test(args.brokerType)) {
    throw new Error(
      `AwsKafka: brokerType must be an MSK broker type starting with "kafka." (e.g. kafka.t3.small), got "${args.brokerType}"`,
    );
  }
  const version = args.kafkaVersion ?? DEFAULT_KAFKA_VERSION;
  if (!/^\d+\.\d+\.(\d+|x)(\.\d+)?(\.kraft|-tiered)?$/.test(version)) {
    throw new Error(`AwsKafka: kafkaVersion must be an MSK version like 3.9.x or 3.6.0, got "${version}"`);
  }
  if (typeof args.topic !== "string" || !/^[a-zA-Z0-9._-]{1,249}$/.test(args.topic) || /^\.\.?$/.test(args.topic)) {
    throw new Error(`AwsKafka: topic must be a Kafka topic name (letters, digits, ".", "_", "-"), got "${args.topic}"`);
  }
  if (!Number.isInteger(args.partitions) || args.partitions < 1 || args.partitions > 1000) {
    throw new Error(`AwsKafka: partitions must be a whole number from 1 to 1000, got ${args.partitions}`);
  }
  if (!Number.isInteger(args.volumeSize) || args.volumeSize < 1 || args.volumeSize > 16384) {
    throw new Error(`AwsKafka: volumeSize must be a whole number of GiB from 1 to 16384, got ${args.volumeSize}`);
  }
  requireTags("AwsKafka", args.tags);
  return { version, brokers: subnets.length };
}

/**
 * An MSK configuration (`<name>`: no auto-created topics, RF = brokers ≤ 3, min ISR = RF − 1), the cluster
 * (`<name>`: one broker per data subnet, TLS client↔broker and in the cluster, SASL/IAM only, unauthenticated off)
 * and the events topic (`<name>-topic`, an `aws.msk.Topic`: the program owns it, the app needs no CreateTopic).
 */
export class AwsKafka extends pulumi.ComponentResource {
  readonly cluster: aws.msk.Cluster;
  readonly configuration: aws.msk.Configuration;
  readonly topicResource: aws.msk.Topic;
  readonly clusterArn: pulumi.Output<string>;
  /** The SASL/IAM bootstrap string (`b-1.…:9098,b-2.…:9098`), for KAFKA_BROKERS. */
  readonly bootstrapBrokers: pulumi.Output<string>;
  /** The topic's IAM resource ARN (kafka-cluster:WriteData, DescribeTopic). */
  readonly topicArn: pulumi.Output<string>;
  /** The consumer groups' ARN prefix; `${groupArnPrefix}*` in a policy covers every group. */
  readonly groupArnPrefix: pulumi.Output<string>;
  readonly topic: string;
  readonly brokerCount: number;
  readonly replicationFactor: number;
  readonly minInsyncReplicas: number;

  constructor(name: string, args: AwsKafkaArgs, opts?: pulumi.ComponentResourceOptions) {
    const { version, brokers } = validate(name, args);
    super(TYPE, name, {}, opts);
    const parent = { parent: this };
    const { replicationFactor, minInsyncReplicas } = replication(brokers);
    this.topic = args.topic;
    this.brokerCount = brokers;
    this.replicationFactor = replicationFactor;
    this.minInsyncReplicas = minInsyncReplicas;

    this.configuration = new aws.msk.Configuration(
      name,
      {
        description: "chatgrid events: no auto-created topics, one broker may be down with acks=-1",
        kafkaVersions: [version],
        serverProperties: serverProperties(brokers, args.partitions),
      },
      parent,
    );
    this.cluster = new aws.msk.Cluster(
      name,
      {
        kafkaVersion: version,
        numberOfBrokerNodes: brokers,
        brokerNodeGroupInfo: {
          instanceType: args.brokerType,
          clientSubnets: args.subnetIds,
          securityGroups: [args.securityGroupId],
          storageInfo: { ebsStorageInfo: { volumeSize: args.volumeSize } },
        },
        encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
        clientAuthentication: { sasl: { iam: true }, unauthenticated: false },
        configurationInfo: { arn: this.configuration.arn, revision: this.configuration.latestRevision },
        enhancedMonitoring: "DEFAULT",
        tags: awsTags(TYPE, args.tags, name),
      },
      parent,
    );
    this.topicResource = new aws.msk.Topic(
      `${name}-topic`,
      {
        clusterArn: this.cluster.arn,
        name: args.topic,
        partitionCount: args.partitions,
        replicationFactor,
        configs: JSON.stringify({ "min.insync.replicas": String(minInsyncReplicas) }),
      },
      parent,
    );
    this.clusterArn = this.cluster.arn;
    this.bootstrapBrokers = this.cluster.bootstrapBrokersSaslIam;
    this.topicArn = this.cluster.arn.apply((arn) => topicArnOf(arn, args.topic));
    this.groupArnPrefix = this.cluster.arn.apply(groupArnPrefixOf);
    this.registerOutputs({
      clusterArn: this.clusterArn,
      bootstrapBrokers: this.bootstrapBrokers,
      topicArn: this.topicArn,
      groupArnPrefix: this.groupArnPrefix,
    });
  }
}
