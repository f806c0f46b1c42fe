import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { AwsAiNodeGroup } from "../components/aws/ai-node-group";
import { AwsAppImage } from "../components/aws/app-image";
import { subnetPlan } from "../components/aws/cidr";
import { AwsCluster } from "../components/aws/cluster";
import { AwsDiscovery } from "../components/aws/discovery";
import { FARGATE } from "../components/aws/fargate";
import { AwsGatewayGroup } from "../components/aws/gateway-group";
import { AwsKafka } from "../components/aws/kafka";
import { ALB_IDLE_TIMEOUT_SECONDS, AwsLoadBalancer } from "../components/aws/load-balancer";
import { AwsNetwork } from "../components/aws/network";
import { AwsRedis } from "../components/aws/redis";
import { AwsSecurityGroups } from "../components/aws/security-groups";
import { AwsWebEntry, WEB_RUNTIME_DIR } from "../components/aws/web-entry";
import { GeneratedSecret } from "../components/generated-secret";
import { images } from "../images";
import { type NginxRenderOptions, renderNginxConf } from "../nginx/render";
import { deriveTopology, type Placement, type Topology } from "../topology";
import { type AwsStackConfig, PLATFORM_OF } from "./aws-config";

/** The repository root: the build context of the app images. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The AWS target's fixed choices (docs/aws.md): the VPC, the Cloud Map namespace, the ports inside the VPC. */
export const AWS = {
  cidr: "172.20.0.0/16",
  namespace: "chatgrid.internal",
  ports: { gateway: 8081, gatewayMetrics: 9081, ai: 7001, web: 3000, redis: 6379, kafka: 9098 },
} as const;

/**
 * Where nodes run on AWS: each node is its own Fargate service with a Cloud Map name. No REDIS_URL (a secret) and no
 * Kafka brokers in the topology's environment (an output of MSK, added by the stack); gateways follow the registry.
 */
export function awsPlacement(config: AwsStackConfig): Placement {
  return {
    bindHost: "0.0.0.0",
    hostOf: (name) => `${name}.${AWS.namespace}`,
    gatewayPort: () => AWS.ports.gateway,
    gatewayMetricsPort: () => AWS.ports.gatewayMetrics,
    aiPort: () => AWS.ports.ai,
    // Same-origin requests need no entry here (the gateways compare Origin with Host, which the ALB passes on).
    allowedOrigins: config.publicOrigin ? [config.publicOrigin] : [],
    aiDiscovery: "registry",
  };
}

/** nginx in the web tasks: the ONE renderer, with what the load balancer and moving tasks need (docs/aws.md "Entry"). */
export function awsNginxOptions(albSubnets: string[], resolverAddress: string): NginxRenderOptions {
  return {
    errorLog: "/dev/stderr",
    accessLog: "off",
    workerProcesses: "auto",
    webRoot: "/usr/share/nginx/html",
    runtimeDir: WEB_RUNTIME_DIR,
    // The client is the last X-Forwarded-For entry (the one the ALB appends), believed only from the ALB's subnets:
    // nothing else in the VPC may choose its client address.
    realIp: { header: "X-Forwarded-For", trusted: albSubnets },
    // Gateway tasks get new addresses when replaced: names re-resolved every 10 s through the VPC's resolver.
    resolver: { address: resolverAddress, valid: "10s" },
    // Above the ALB's idle timeout, so the ALB never reuses a connection nginx is closing (a 502).
    keepaliveTimeout: ALB_IDLE_TIMEOUT_SECONDS + 5,
    workerShutdownTimeout: "10s",
    // The load balancer reaches port 3000 only; the file travels in the task definition (64 KiB in all).
    webPortOnly: true,
  };
}

/** What the stack adds to every gateway's and AI node's environment on AWS, besides Kafka's settings. */
export const AWS_NODE_ENV: Readonly<Record<string, string>> = {
  // Within the tasks' stop timeout (FARGATE.stopTimeout), so a drain finishes before SIGKILL.
  SHUTDOWN_GRACE_MS: String(FARGATE.shutdownGraceMs),
};

export interface AwsStack {
  topology: Topology;
  network: AwsNetwork;
  securityGroups: AwsSecurityGroups;
  redis: AwsRedis;
  kafka?: AwsKafka;
  gateways: AwsGatewayGroup;
  aiNodes: AwsAiNodeGroup;
  web: AwsWebEntry;
  loadBalancer: AwsLoadBalancer;
  nginxConf: string;
  outputs: {
    url: pulumi.Output<string>;
    clusterName: pulumi.Output<string>;
    logGroups: pulumi.Output<string[]>;
    redisEndpoint: pulumi.Output<string>;
    kafkaBootstrap?: pulumi.Output<string>;
    nodeNames: { gateways: string[]; aiNodes: string[] };
  };
}

/**
 * A Secrets Manager secret holding `value` (ECS hands it to the tasks that list it; nothing else reads it). Its
 * `arn` is the version's: whatever uses it waits until the value is stored.
 */
function storedSecret(name: string, value: pulumi.Input<string>, config: AwsStackConfig, tags: Record<string, string>) {
  const secret = new aws.secretsmanager.Secret(name, {
    description: `chatgrid ${pulumi.getStack()}: ${name}`,
    recoveryWindowInDays: config.secretRecoveryWindowDays,
    tags,
  });
  const version = new aws.secretsmanager.SecretVersion(name, {
    secretId: secret.id,
    secretString: pulumi.secret(value),
  });
  return { arn: version.secretArn };
}

/** The whole `aws` stack from its validated configuration (infra/stacks/aws-config.ts). */
export function buildAwsStack(config: AwsStackConfig, options: { repoRoot?: string } = {}): AwsStack {
  const repoRoot = options.repoRoot ?? REPO_ROOT;
  const tags = { "chatgrid:stack": pulumi.getStack() };
  const topology = deriveTopology(config.topology, awsPlacement(config));
  const nodeNames = [...topology.gateways, ...topology.aiNodes].map((node) => node.name);

  const network = new AwsNetwork("chatgrid", {
    cidrBlock: AWS.cidr,
    availabilityZones: config.availabilityZones,
    region: config.region,
    natGateways: config.natGateways,
    interfaceEndpoints: config.vpcEndpoints,
    tags,
  });
  const securityGroups = new AwsSecurityGroups("chatgrid", {
    vpcId: network.vpcId,
    vpcCidr: network.vpcCidr,
    ports: {
      web: AWS.ports.web,
      gateway: AWS.ports.gateway,
      ai: AWS.ports.ai,
      redis: AWS.ports.redis,
      kafka: AWS.ports.kafka,
    },
    kafka: config.kafka !== undefined,
    certificate: config.certificateArn !== undefined,
    tags,
  });
  const groups = securityGroups.ids;
  const discovery = new AwsDiscovery("chatgrid", { vpcId: network.vpcId, namespace: AWS.namespace, nodeNames, tags });
  const redis = new AwsRedis("chatgrid", {
    subnetIds: network.dataSubnetIds,
    securityGroupId: groups.redis,
    engine: config.redis.engine,
    engineVersion: config.redis.engineVersion,
    nodeType: config.redis.nodeType,
    secretRecoveryWindowDays: config.secretRecoveryWindowDays,
    tags,
  });
  const kafka = config.kafka
    ? new AwsKafka("chatgrid", {
        subnetIds: network.dataSubnetIds,
        securityGroupId: groups.kafka!,
        brokerType: config.kafka.brokerType,
        kafkaVersion: config.kafka.version,
        topic: config.kafka.topic,
        partitions: config.kafka.partitions,
        volumeSize: config.kafka.volumeGiB,
        tags,
      })
    : undefined;

  // The nodes' shared HMAC key (dispatch signatures, registry entries): drawn once, kept in the state and in Secrets Manager.
  const clusterSecret = storedSecret(
    "chatgrid-cluster-secret",
    new GeneratedSecret("chatgrid-cluster-secret").value,
    config,
    tags,
  );
  const openaiKey = config.openaiApiKey
    ? storedSecret("chatgrid-openai-api-key", config.openaiApiKey, config, tags)
    : undefined;

  const platform = PLATFORM_OF[config.cpuArchitecture];
  const image = (app: "gateway" | "ai" | "web") =>
    new AwsAppImage(app, { app, repoRoot, baseImages: images, platform, tags });
  const appImages = { gateway: image("gateway"), ai: image("ai"), web: image("web") };
  const ref = (app: keyof typeof appImages) => ({
    ref: appImages[app].ref,
    repositoryArn: appImages[app].repository.arn,
  });

  const cluster = new AwsCluster("chatgrid", { containerInsights: false, tags });
  const kafkaEnv: Record<string, pulumi.Input<string>> = kafka
    ? {
        KAFKA_BROKERS: kafka.bootstrapBrokers,
        KAFKA_TOPIC: kafka.topic,
        KAFKA_PARTITIONS: String(config.topology.kafka.partitions),
        KAFKA_SSL: "true",
        KAFKA_SASL_MECHANISM: "msk-iam",
        KAFKA_AWS_REGION: config.region,
      }
    : {};
  const common = {
    clusterArn: cluster.arn,
    architecture: config.cpuArchitecture,
    region: config.region,
    subnetIds: network.appSubnetIds,
    registryArn: (name: string) => discovery.serviceArn(name),
    environment: { ...kafkaEnv, ...AWS_NODE_ENV },
    kafka: kafka ? { clusterArn: kafka.clusterArn, topicArn: kafka.topicArn } : undefined,
    logRetentionDays: config.logRetentionDays,
    tags,
    // The tasks pull through the NAT routes and produce to the program's topic: both exist before any service.
    dependsOn: [network, ...(kafka ? [kafka] : [])],
  };
  const nodeSecrets = { REDIS_URL: redis.urlSecretArn, CLUSTER_SECRET: clusterSecret.arn };
  const aiNodes = new AwsAiNodeGroup("chatgrid-ai", {
    ...common,
    nodes: topology.aiNodes,
    image: ref("ai"),
    size: config.tasks.ai,
    securityGroupId: groups.ai,
    secrets: openaiKey ? { ...nodeSecrets, OPENAI_API_KEY: openaiKey.arn } : nodeSecrets,
  });
  const gateways = new AwsGatewayGroup("chatgrid-gateways", {
    ...common,
    nodes: topology.gateways,
    image: ref("gateway"),
    size: config.tasks.gateway,
    securityGroupId: groups.gateway,
    secrets: nodeSecrets,
  });

  const loadBalancer = new AwsLoadBalancer("chatgrid", {
    vpcId: network.vpcId,
    publicSubnetIds: network.publicSubnetIds,
    securityGroupId: groups.alb,
    targetPort: AWS.ports.web,
    certificateArn: config.certificateArn,
    deletionProtection: config.deletionProtection,
    tags,
  });
  const nginxConf = renderNginxConf(
    { ...topology, config: { ...topology.config, webPort: AWS.ports.web } },
    awsNginxOptions(
      subnetPlan(AWS.cidr, config.availabilityZones.length).map((zone) => zone.public),
      network.resolverAddress,
    ),
  );
  const web = new AwsWebEntry("chatgrid", {
    nginxConf,
    port: AWS.ports.web,
    tasks: config.webTasks,
    clusterArn: cluster.arn,
    image: ref("web"),
    architecture: config.cpuArchitecture,
    size: config.tasks.web,
    region: config.region,
    subnetIds: network.appSubnetIds,
    securityGroupId: groups.web,
    targetGroupArn: loadBalancer.targetGroup.arn,
    listeners: loadBalancer.listeners,
    dependsOn: [network],
    logRetentionDays: config.logRetentionDays,
    tags,
  });

  return {
    topology,
    network,
    securityGroups,
    redis,
    kafka,
    gateways,
    aiNodes,
    web,
    loadBalancer,
    nginxConf,
    outputs: {
      url: loadBalancer.url,
      clusterName: cluster.name,
      logGroups: pulumi.all([...gateways.logGroupNames, ...aiNodes.logGroupNames, web.logGroupName]),
      redisEndpoint: redis.primaryEndpoint,
      kafkaBootstrap: kafka?.bootstrapBrokers,
      nodeNames: { gateways: gateways.nodeNames, aiNodes: aiNodes.nodeNames },
    },
  };
}
