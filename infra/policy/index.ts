// The policy pack the Pulumi CLI runs: `pulumi preview --stack aws --policy-pack infra/policy` (docs/policy.md).
// The ONLY module that constructs the PolicyPack: the constructor starts the analyzer's gRPC server, prints its port
// for the CLI, and exits the process if a second pack is constructed. Tests import ./rules, never this module.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./rules";

new PolicyPack("chatgrid-aws", {
  policies,
  description:
    "chatgrid's rules for its AWS stack: ECS Fargate tasks and services, ElastiCache, MSK, the load balancer, security groups, IAM, ECR, logs, the VPC and secrets (docs/policy.md).",
});
