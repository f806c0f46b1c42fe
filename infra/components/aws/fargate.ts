import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { CpuArchitecture, TaskSize } from "../../stacks/aws-config";

/**
 * What every chatgrid task on Fargate shares (docs/aws.md "Tasks"): awsvpc networking, a read-only root filesystem,
 * awslogs in non-blocking mode with a bounded buffer (a slow CloudWatch never stalls the app), a stop timeout above
 * the apps' drain (SHUTDOWN_GRACE_MS 15 s), ECS Exec off, no public address, a rolling 100/200 deployment with the
 * circuit breaker rolling back, and `pulumi up` waiting for steady state.
 */
export const FARGATE = {
  platformVersion: "1.4.0",
  /** Seconds between SIGTERM and SIGKILL; the apps drain for SHUTDOWN_GRACE_MS (15 s on AWS) within it. */
  stopTimeout: 30,
  shutdownGraceMs: 15_000,
  logBufferSize: "25m",
} as const;

/** A container's health check as ECS takes it (seconds). ECS replaces a task whose essential container fails it. */
export interface EcsHealthCheck {
  command: string[];
  interval: number;
  timeout: number;
  retries: number;
  startPeriod: number;
}

/**
 * A liveness check every chatgrid container gets (docs/operations.md "Liveness and readiness"): `command` run in
 * the container every 10 s, 3 s each, 3 failures in a row after a start period replace the task.
 */
export function livenessHealthCheck(command: readonly string[], startPeriod = 15): EcsHealthCheck {
  return { command: ["CMD", ...command], interval: 10, timeout: 3, retries: 3, startPeriod };
}

/** Where a group of tasks runs: the same for the gateways, the AI nodes and the web entry. */
export interface FargatePlacementArgs {
  clusterArn: pulumi.Input<string>;
  image: { ref: pulumi.Input<string>; repositoryArn: pulumi.Input<string> };
  architecture: CpuArchitecture;
  size: TaskSize;
  region: string;
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
}

export interface FargateTaskArgs {
  /** The container's name and the task family's suffix (gateway-1, ai-2, web). */
  container: string;
  /** `<repositoryUrl>@sha256:…`: by digest, never by tag. */
  image: pulumi.Input<string>;
  size: TaskSize;
  architecture: CpuArchitecture;
  executionRoleArn: pulumi.Input<string>;
  taskRoleArn?: pulumi.Input<string>;
  logGroupName: pulumi.Input<string>;
  region: string;
  ports: number[];
  environment: Record<string, pulumi.Input<string>>;
  /** Env name → Secrets Manager ARN; ECS fetches the values at start, they never sit in the task definition. */
  secrets: Record<string, pulumi.Input<string>>;
  healthCheck: EcsHealthCheck;
  /** Writable paths on a read-only root filesystem (task-local volumes). */
  writablePaths?: string[];
  entryPoint?: string[];
  command?: string[];
}

/** The container definitions JSON of a one-container task (sorted env, so an unchanged topology is no diff). */
export function containerDefinitions(args: FargateTaskArgs): pulumi.Output<string> {
  const volumeName = (path: string) => `writable${path.replace(/[^a-z0-9]/gi, "-")}`;
  return pulumi.jsonStringify([
    {
      name: args.container,
      image: args.image,
      essential: true,
      readonlyRootFilesystem: true,
      stopTimeout: FARGATE.stopTimeout,
      portMappings: args.ports.map((port) => ({ containerPort: port, protocol: "tcp" })),
      environment: Object.keys(args.environment)
        .sort()
        .map((name) => ({ name, value: args.environment[name] })),
      secrets: Object.keys(args.secrets)
        .sort()
        .map((name) => ({ name, valueFrom: args.secrets[name] })),
      healthCheck: args.healthCheck,
      mountPoints: (args.writablePaths ?? []).map((path) => ({
        sourceVolume: volumeName(path),
        containerPath: path,
        readOnly: false,
      })),
      ...(args.entryPoint ? { entryPoint: args.entryPoint } : {}),
      ...(args.command ? { command: args.command } : {}),
      logConfiguration: {
        logDriver: "awslogs",
        options: {
          "awslogs-group": args.logGroupName,
          "awslogs-region": args.region,
          "awslogs-stream-prefix": args.container,
          mode: "non-blocking",
          "max-buffer-size": FARGATE.logBufferSize,
        },
      },
    },
  ]);
}

/** The task definition of one container on Fargate. */
export function fargateTaskDefinition(
  name: string,
  family: string,
  args: FargateTaskArgs,
  tags: Record<string, string>,
  parent: pulumi.Resource,
): aws.ecs.TaskDefinition {
  return new aws.ecs.TaskDefinition(
    name,
    {
      family,
      cpu: String(args.size.cpu),
      memory: String(args.size.memory),
      networkMode: "awsvpc",
      requiresCompatibilities: ["FARGATE"],
      runtimePlatform: { operatingSystemFamily: "LINUX", cpuArchitecture: args.architecture },
      executionRoleArn: args.executionRoleArn,
      taskRoleArn: args.taskRoleArn,
      containerDefinitions: containerDefinitions(args),
      volumes: (args.writablePaths ?? []).map((path) => ({ name: `writable${path.replace(/[^a-z0-9]/gi, "-")}` })),
      tags,
    },
    { parent },
  );
}

export interface FargateServiceArgs {
  clusterArn: pulumi.Input<string>;
  taskDefinitionArn: pulumi.Input<string>;
  desiredCount: number;
  subnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  /** Cloud Map service: the node's stable name. */
  registryArn?: pulumi.Input<string>;
  loadBalancer?: { targetGroupArn: pulumi.Input<string>; containerName: string; containerPort: number };
  /** ECS refuses a target group that no listener uses yet: the web service waits for the listeners. */
  dependsOn?: pulumi.Resource[];
}

/** A Fargate service with the rollout every chatgrid service uses (FARGATE above). */
export function fargateService(
  name: string,
  args: FargateServiceArgs,
  tags: Record<string, string>,
  parent: pulumi.Resource,
): aws.ecs.Service {
  return new aws.ecs.Service(
    name,
    {
      cluster: args.clusterArn,
      taskDefinition: args.taskDefinitionArn,
      launchType: "FARGATE",
      platformVersion: FARGATE.platformVersion,
      desiredCount: args.desiredCount,
      deploymentMinimumHealthyPercent: 100,
      deploymentMaximumPercent: 200,
      deploymentCircuitBreaker: { enable: true, rollback: true },
      waitForSteadyState: true,
      enableExecuteCommand: false,
      propagateTags: "SERVICE",
      enableEcsManagedTags: true,
      networkConfiguration: {
        subnets: args.subnetIds,
        securityGroups: [args.securityGroupId],
        assignPublicIp: false,
      },
      serviceRegistries: args.registryArn ? { registryArn: args.registryArn } : undefined,
      loadBalancers: args.loadBalancer ? [args.loadBalancer] : undefined,
      healthCheckGracePeriodSeconds: args.loadBalancer ? 30 : undefined,
      tags,
    },
    { parent, dependsOn: args.dependsOn },
  );
}

/** A log group per service, with the stack's retention (never "forever"). */
export function logGroup(
  name: string,
  retentionInDays: number,
  tags: Record<string, string>,
  parent: pulumi.Resource,
): aws.cloudwatch.LogGroup {
  return new aws.cloudwatch.LogGroup(
    name,
    { name: `/chatgrid/${pulumi.getStack()}/${name}`, retentionInDays, tags },
    { parent },
  );
}
