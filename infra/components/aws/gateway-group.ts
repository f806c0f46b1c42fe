import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { appLivenessCheck } from "../../images";
import { livenessHealthCheck } from "./fargate";
import { type AwsNodeGroupArgs, nodeServices, requireNodeGroupArgs } from "./node-services";
import type { AwsAppRoles } from "./roles";

/** ECS checks liveness (docs/operations.md "Liveness and readiness"): readiness would replace every gateway in an AI outage. */
export const GATEWAY_HEALTH_CHECK = livenessHealthCheck(appLivenessCheck.gateway);

/**
 * N gateways on Fargate, one service each, named in Cloud Map (nginx's upstream resolves the names). Their
 * environment names no AI node: they follow the signed AI registry in Redis, so scaling AI nodes changes no gateway
 * task definition (docs/architecture.md "AI discovery").
 */
export class AwsGatewayGroup extends pulumi.ComponentResource {
  readonly services: aws.ecs.Service[];
  readonly taskDefinitions: aws.ecs.TaskDefinition[];
  readonly roles: AwsAppRoles;
  readonly nodeNames: string[];
  /** One log group per node, in node order. */
  readonly logGroupNames: pulumi.Output<string>[];

  constructor(name: string, args: AwsNodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    requireNodeGroupArgs("AwsGatewayGroup", "gateway", args);
    for (const node of args.nodes) {
      if (node.env.AI_SERVICE_URLS || node.env.AI_DISCOVERY !== "true") {
        throw new Error(`AwsGatewayGroup: ${node.name} must find AI nodes by the registry only (AI_DISCOVERY=true)`);
      }
    }
    if ("OPENAI_API_KEY" in args.secrets) throw new Error("AwsGatewayGroup: gateways never get the model's API key");
    super("chatgrid:aws:GatewayGroup", name, {}, opts);
    const built = nodeServices("gateway", name, args, GATEWAY_HEALTH_CHECK, this);
    this.services = built.services;
    this.taskDefinitions = built.taskDefinitions;
    this.roles = built.roles;
    this.nodeNames = built.nodeNames;
    this.logGroupNames = built.logGroupNames;
    this.registerOutputs({ nodeNames: this.nodeNames });
  }
}
