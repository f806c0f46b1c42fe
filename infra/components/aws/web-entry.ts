import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { requireRenderedConf } from "../nginx";
import {
  type FargatePlacementArgs,
  fargateService,
  fargateTaskDefinition,
  livenessHealthCheck,
  logGroup,
} from "./fargate";
import { AwsAppRoles } from "./roles";

export interface AwsWebEntryArgs extends FargatePlacementArgs {
  /** The rendered configuration (renderNginxConf with the AWS options), handed to the task in CHATGRID_NGINX_CONF. */
  nginxConf: string;
  port: number;
  tasks: number;
  targetGroupArn: pulumi.Input<string>;
  /** The load balancer's listeners: the service is created after them (ECS needs the target group in use). */
  listeners: pulumi.Resource[];
  /** What the tasks need before they start (the network's NAT routes to pull the image). */
  dependsOn?: pulumi.Resource[];
  logRetentionDays: number;
  tags: Record<string, string>;
}

/** The most of the task definition's 64 KiB the nginx configuration may take (the rest: the container's settings). */
export const MAX_NGINX_CONF_BYTES = 40 * 1024;

/** Where the entry script writes the configuration: the task's only writable path (the root is read-only). */
export const WEB_RUNTIME_DIR = "/tmp";
/** nginx's own /healthz: liveness (it answers without any gateway), so ECS never replaces nginx for a gateway outage. */
export const WEB_HEALTH_CHECK = livenessHealthCheck(
  ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/healthz"],
  10,
);

/** The web image's ENTRYPOINT is nginx itself; on Fargate a shell writes the file first, then becomes nginx (exec). */
export const WEB_ENTRY_POINT = ["sh", "-c"];
export const WEB_COMMAND = [
  `printf '%s' "$CHATGRID_NGINX_CONF" > ${WEB_RUNTIME_DIR}/nginx.conf && exec nginx -c ${WEB_RUNTIME_DIR}/nginx.conf -g 'daemon off;'`,
];

/**
 * The web tasks (docs/aws.md "Entry"): the web image's nginx serving the client and proxying /api/ and /ws/ to the
 * gateways by their Cloud Map names, re-resolved as tasks move. The configuration is the ONE renderer's output;
 * it travels in the task definition (no file to upload on Fargate) and the entry script writes it to /tmp.
 */
export class AwsWebEntry extends pulumi.ComponentResource {
  readonly service: aws.ecs.Service;
  readonly taskDefinition: aws.ecs.TaskDefinition;
  readonly roles: AwsAppRoles;
  readonly logGroupName: pulumi.Output<string>;

  constructor(name: string, args: AwsWebEntryArgs, opts?: pulumi.ComponentResourceOptions) {
    requireRenderedConf("AwsWebEntry", args.nginxConf, [args.port]);
    for (const [needed, why] of [
      ["real_ip_header X-Forwarded-For;", "the client address behind the load balancer (realIp)"],
      [" resolve", "gateway names re-resolved as tasks move (resolver)"],
      [`pid ${WEB_RUNTIME_DIR}/`, `its pid and temp files under ${WEB_RUNTIME_DIR} (runtimeDir)`],
    ] as const) {
      if (!args.nginxConf.includes(needed)) throw new Error(`AwsWebEntry: nginxConf must have ${why}`);
    }
    // ECS refuses a task definition over 64 KiB; the configuration travels in it, so keep it well inside.
    if (Buffer.byteLength(args.nginxConf) > MAX_NGINX_CONF_BYTES) {
      throw new Error(
        `AwsWebEntry: nginxConf is ${Buffer.byteLength(args.nginxConf)} bytes; at most ${MAX_NGINX_CONF_BYTES} fit the task definition (render it with webPortOnly)`,
      );
    }
    if (!Number.isInteger(args.tasks) || args.tasks < 1) {
      throw new Error(`AwsWebEntry: tasks must be at least 1, got ${args.tasks}`);
    }
    super("chatgrid:aws:WebEntry", name, {}, opts);
    const log = logGroup(`${name}-web`, args.logRetentionDays, args.tags, this);
    this.logGroupName = log.name;
    this.roles = new AwsAppRoles(
      `${name}-roles`,
      { app: "web", repositoryArn: args.image.repositoryArn, logGroupArns: [log.arn], secretArns: [], tags: args.tags },
      { parent: this },
    );
    this.taskDefinition = fargateTaskDefinition(
      `${name}-web`,
      `chatgrid-${pulumi.getStack()}-web`,
      {
        container: "web",
        image: args.image.ref,
        size: args.size,
        architecture: args.architecture,
        executionRoleArn: this.roles.executionRole.arn,
        logGroupName: log.name,
        region: args.region,
        ports: [args.port],
        environment: { CHATGRID_NGINX_CONF: args.nginxConf },
        secrets: {},
        healthCheck: WEB_HEALTH_CHECK,
        writablePaths: [WEB_RUNTIME_DIR],
        entryPoint: WEB_ENTRY_POINT,
        command: WEB_COMMAND,
      },
      args.tags,
      this,
    );
    this.service = fargateService(
      `${name}-web`,
      {
        clusterArn: args.clusterArn,
        taskDefinitionArn: this.taskDefinition.arn,
        desiredCount: args.tasks,
        subnetIds: args.subnetIds,
        securityGroupId: args.securityGroupId,
        loadBalancer: { targetGroupArn: args.targetGroupArn, containerName: "web", containerPort: args.port },
        dependsOn: [...args.listeners, this.roles, ...(args.dependsOn ?? [])],
      },
      args.tags,
      this,
    );
    this.registerOutputs({});
  }
}
