import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { NodeRole, NodeSpec } from "../../topology";
import {
  type EcsHealthCheck,
  type FargatePlacementArgs,
  fargateService,
  fargateTaskDefinition,
  logGroup,
} from "./fargate";
import { AwsAppRoles } from "./roles";

/** What a gateway or AI node group on Fargate needs from the rest of the stack. */
export interface AwsNodeGroupArgs extends FargatePlacementArgs {
  /** The topology's nodes of this role, their environment without REDIS_URL (a secret here). */
  nodes: NodeSpec[];
  /** Cloud Map service ARN of each node name. */
  registryArn(name: string): pulumi.Input<string>;
  /** Env name → Secrets Manager ARN, for every node of the group (REDIS_URL, CLUSTER_SECRET, OPENAI_API_KEY, …). */
  secrets: Record<string, pulumi.Input<string>>;
  /** Environment added on AWS (Kafka's brokers and auth, the drain time), values may be outputs. */
  environment: Record<string, pulumi.Input<string>>;
  kafka?: { clusterArn: pulumi.Input<string>; topicArn: pulumi.Input<string> };
  logRetentionDays: number;
  tags: Record<string, string>;
  /**
   * What the tasks need before they start (the network's NAT routes to pull the image, the Kafka topic): a service
   * created earlier would fail its first launches and the circuit breaker would mark the deployment failed.
   */
  dependsOn?: pulumi.Resource[];
}

/** Names of env settings that hold credentials (a word of the name, so DEMO_TOKENS_PER_SECOND is not one): they may only arrive as ECS secrets (docs/aws.md "Secrets"). */
export const SECRET_NAME = /(^|_)(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)(_|$)|^REDIS_URL$/i;

/** The group's arguments, checked before anything is registered (exact messages: infra/components/aws/node-groups.test.ts). */
export function requireNodeGroupArgs(component: string, role: NodeRole, args: AwsNodeGroupArgs): void {
  if (args.nodes.length === 0) throw new Error(`${component}: needs at least one ${role} node`);
  const wrong = args.nodes.find((node) => node.role !== role);
  if (wrong) throw new Error(`${component}: ${wrong.name} is a ${wrong.role} node, not a ${role} node`);
  if (new Set(args.nodes.map((node) => node.name)).size !== args.nodes.length) {
    throw new Error(`${component}: node names must be unique`);
  }
  for (const node of args.nodes) {
    if ("REDIS_URL" in node.env) {
      throw new Error(`${component}: ${node.name} has REDIS_URL in its environment (on AWS it is a secret)`);
    }
  }
  const plain = [...Object.keys(args.environment), ...args.nodes.flatMap((node) => Object.keys(node.env))];
  const leaked = [...new Set(plain.filter((env) => SECRET_NAME.test(env)))];
  if (leaked.length > 0) {
    throw new Error(`${component}: ${leaked.join(", ")} must be secrets, not environment (docs/aws.md "Secrets")`);
  }
  if (!("REDIS_URL" in args.secrets)) throw new Error(`${component}: REDIS_URL must be among the secrets`);
}

/**
 * One ECS service per node (desired count 1, its own Cloud Map name: node names are identities in the protocol,
 * the metrics and the AI registry), its task definition and log group, and the app kind's roles.
 */
export function nodeServices(
  role: NodeRole,
  name: string,
  args: AwsNodeGroupArgs,
  healthCheck: EcsHealthCheck,
  parent: pulumi.Resource,
): {
  services: aws.ecs.Service[];
  taskDefinitions: aws.ecs.TaskDefinition[];
  roles: AwsAppRoles;
  nodeNames: string[];
  logGroupNames: pulumi.Output<string>[];
} {
  const logs = args.nodes.map((node) => logGroup(`${name}-${node.name}`, args.logRetentionDays, args.tags, parent));
  const app = role === "gateway" ? "gateway" : "ai";
  const roles = new AwsAppRoles(
    `${name}-roles`,
    {
      app,
      repositoryArn: args.image.repositoryArn,
      logGroupArns: logs.map((log) => log.arn),
      secretArns: Object.values(args.secrets),
      kafka: args.kafka,
      tags: args.tags,
    },
    { parent },
  );
  const taskDefinitions = args.nodes.map((node, i) =>
    fargateTaskDefinition(
      `${name}-${node.name}`,
      `chatgrid-${pulumi.getStack()}-${node.name}`,
      {
        container: node.name,
        image: args.image.ref,
        size: args.size,
        architecture: args.architecture,
        executionRoleArn: roles.executionRole.arn,
        taskRoleArn: roles.taskRole?.arn,
        logGroupName: logs[i]!.name,
        region: args.region,
        ports: [...new Set([node.port, node.metricsPort])],
        environment: { ...node.env, ...args.environment },
        secrets: args.secrets,
        healthCheck,
      },
      args.tags,
      parent,
    ),
  );
  const services = args.nodes.map((node, i) =>
    fargateService(
      `${name}-${node.name}`,
      {
        clusterArn: args.clusterArn,
        taskDefinitionArn: taskDefinitions[i]!.arn,
        desiredCount: 1,
        subnetIds: args.subnetIds,
        securityGroupId: args.securityGroupId,
        registryArn: args.registryArn(node.name),
        // The roles' policies too: the execution role must be able to pull and read secrets at the first launch.
        dependsOn: [roles, ...(args.dependsOn ?? [])],
      },
      args.tags,
      parent,
    ),
  );
  return {
    services,
    taskDefinitions,
    roles,
    nodeNames: args.nodes.map((node) => node.name),
    logGroupNames: logs.map((log) => log.name),
  };
}
