import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlacement, type PublishedPort, pinnedImage, requireDnsName, serviceContainer } from "./common";

export interface KafkaBrokerArgs {
  containerName: string;
  /** A pinned official Apache Kafka image (`apache/kafka:3.9.1@sha256:…`). */
  image: string;
  network: NetworkPlacement;
  /** The listener other containers use (`<alias>:<port>`). */
  port: number;
  /** The listener advertised as `localhost:<debugPort.external>`, for clients on the host; published or not. */
  hostListenerPort: number;
  /** Default partitions of new topics (the gateways create theirs with the topology's count). */
  partitions: number;
  /** Published on the host for debugging (kcat, kafka-console-consumer), or not at all. */
  debugPort?: PublishedPort;
}

/** KRaft cluster id of the single-node cluster (a base64 UUID); the log dir is formatted with it on first start. */
export const KAFKA_CLUSTER_ID = "4L6g3nShT-eMCtK--X86sw";

/**
 * One Kafka broker that is also its own KRaft controller (no ZooKeeper), replication factor 1. Two listeners: one
 * for the network (`kafka:9092`), one advertised as `localhost` for the debug port on the host.
 */
export class KafkaBroker extends pulumi.ComponentResource {
  readonly image: docker.RemoteImage;
  readonly container: docker.Container;
  /** Bootstrap servers for the other containers. */
  readonly bootstrap: string;

  constructor(name: string, args: KafkaBrokerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Kafka", name, {}, opts);
    requireDnsName("KafkaBroker", "containerName", args.containerName);
    const alias = args.network.aliases[0];
    if (!alias) throw new Error("KafkaBroker: the network placement needs an alias");
    if (args.port === args.hostListenerPort || args.port === 9093 || args.hostListenerPort === 9093) {
      throw new Error("KafkaBroker: port, hostListenerPort and the controller port 9093 must all differ");
    }
    if (args.debugPort && args.debugPort.internal !== args.hostListenerPort) {
      throw new Error(`KafkaBroker: the debug port must publish the host listener ${args.hostListenerPort}`);
    }
    if (!Number.isInteger(args.partitions) || args.partitions < 1) {
      throw new Error(`KafkaBroker: partitions must be a positive integer, got ${args.partitions}`);
    }
    const hostPort = args.debugPort?.external ?? args.hostListenerPort;

    this.image = pinnedImage("KafkaBroker", args.containerName, args.image, this);
    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: this.image.imageId,
        network: args.network,
        // The image turns KAFKA_* variables into server.properties (KAFKA_LOG_DIRS → log.dirs).
        env: {
          CLUSTER_ID: KAFKA_CLUSTER_ID,
          KAFKA_NODE_ID: "1",
          KAFKA_PROCESS_ROLES: "broker,controller",
          KAFKA_CONTROLLER_QUORUM_VOTERS: "1@localhost:9093",
          KAFKA_LISTENERS: `INTERNAL://0.0.0.0:${args.port},HOST://0.0.0.0:${args.hostListenerPort},CONTROLLER://0.0.0.0:9093`,
          KAFKA_ADVERTISED_LISTENERS: `INTERNAL://${alias}:${args.port},HOST://localhost:${hostPort}`,
          KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: "INTERNAL:PLAINTEXT,HOST:PLAINTEXT,CONTROLLER:PLAINTEXT",
          KAFKA_INTER_BROKER_LISTENER_NAME: "INTERNAL",
          KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
          KAFKA_LOG_DIRS: "/tmp/kraft-combined-logs",
          KAFKA_NUM_PARTITIONS: String(args.partitions),
          KAFKA_DEFAULT_REPLICATION_FACTOR: "1",
          KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
          KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1",
          KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1",
          KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
          // The gateways and AI nodes create the events topic with its partitions; nothing else appears by typo.
          KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
          KAFKA_HEAP_OPTS: "-Xmx512m -Xms256m",
        },
        healthCheck: {
          tests: [
            "CMD-SHELL",
            `/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:${args.port} >/dev/null 2>&1`,
          ],
          interval: "15s",
          timeout: "10s",
          startPeriod: "30s",
          retries: 5,
        },
        ports: args.debugPort ? [args.debugPort] : [],
        labels: { "chatgrid.role": "kafka" },
        waitTimeout: 180,
      },
      { parent: this },
    );
    this.bootstrap = `${alias}:${args.port}`;
    this.registerOutputs({ bootstrap: this.bootstrap, containerName: args.containerName });
  }
}
