import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { appLivenessCheck } from "../../images";
import { livenessHealthCheck } from "./fargate";
import { type AwsNodeGroupArgs, nodeServices, requireNodeGroupArgs } from "./node-services";
import type { AwsAppRoles } from "./roles";

/** ECS checks liveness: readiness would replace every AI node during a Redis failover. */
export const AI_HEALTH_CHECK = livenessHealthCheck(appLivenessCheck.ai);

/**
 * M AI nodes on Fargate, one service each, named in Cloud Map: each announces `http://ai-N.chatgrid.internal:7001`
 * (PUBLIC_URL) in the signed registry, where gateways find it.
 */
export class AwsAiNodeGroup extends pulumi.ComponentResource {
  readonly services: aws.ecs.Service[];
  readonly taskDefinitions: aws.ecs.TaskDefinition[];
  readonly roles: AwsAppRoles;
  readonly nodeNames: string[];
  /** One log group per node, in node order. */
  readonly logGroupNames: pulumi.Output<string>[];

  constructor(name: string, args: AwsNodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    requireNodeGroupArgs("AwsAiNodeGroup", "ai", args);
    for (const node of args.nodes) {
      if (!node.env.PUBLIC_URL?.startsWith(`http://${node.host}:`)) {
        throw new Error(`AwsAiNodeGroup: ${node.name}'s PUBLIC_URL must be its Cloud Map name (${node.host})`);
      }
    }
    super("chatgrid:aws:AiNodeGroup", name, {}, opts);
    const built = nodeServices("ai", name, args, AI_HEALTH_CHECK, this);
    this.services = built.services;
    this.taskDefinitions = built.taskDefinitions;
    this.roles = built.roles;
    this.nodeNames = built.nodeNames;
    this.logGroupNames = built.logGroupNames;
    this.registerOutputs({ nodeNames: this.nodeNames });
  }
}
