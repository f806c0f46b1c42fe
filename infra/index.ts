// The Pulumi program (Pulumi.yaml: main infra/). Thin on purpose: pick the stack's program, read and validate its
// configuration, build it, export its outputs. `local` is the Docker stack (docs/docker.md), `aws` the AWS one
// (docs/aws.md); everything else is in infra/stacks/ and infra/components/.
import * as pulumi from "@pulumi/pulumi";
import { buildAwsStack } from "./stacks/aws";
import { readAwsStackConfig } from "./stacks/aws-config";
import { readStackConfig } from "./stacks/config";
import { buildLocalStack } from "./stacks/local";

const stack = pulumi.getStack();
if (stack !== "local" && stack !== "aws") {
  throw new Error(
    `chatgrid has no program for stack "${stack}": the Docker stack is "local", the AWS one "aws" (pulumi stack select local)`,
  );
}

function localOutputs() {
  const { outputs } = buildLocalStack(readStackConfig());
  return {
    chatUrl: outputs.chatUrl,
    apiUrl: outputs.apiUrl,
    metricsUrl: outputs.metricsUrl,
    nodeNames: outputs.nodeNames,
    redisUrl: outputs.redisUrl,
    kafkaBootstrap: outputs.kafkaBootstrap,
    // Secrets (shown as [secret]): `pulumi stack output redisPassword --show-secrets`.
    redisPassword: outputs.redisPassword,
    clusterSecret: outputs.clusterSecret,
  };
}

function awsOutputs() {
  const { outputs } = buildAwsStack(readAwsStackConfig(new pulumi.Config("aws").get("region")));
  // The same names as the Docker stack where they mean the same; no secret is an output here.
  return {
    chatUrl: outputs.url,
    apiUrl: outputs.url,
    metricsUrl: undefined,
    nodeNames: outputs.nodeNames,
    redisUrl: undefined,
    kafkaBootstrap: outputs.kafkaBootstrap,
    redisPassword: undefined,
    clusterSecret: undefined,
    clusterName: outputs.clusterName,
    logGroups: outputs.logGroups,
    redisEndpoint: outputs.redisEndpoint,
  };
}

const outputs =
  stack === "aws"
    ? awsOutputs()
    : { ...localOutputs(), clusterName: undefined, logGroups: undefined, redisEndpoint: undefined };

export const chatUrl = outputs.chatUrl;
export const apiUrl = outputs.apiUrl;
export const metricsUrl = outputs.metricsUrl;
export const nodeNames = outputs.nodeNames;
export const redisUrl = outputs.redisUrl;
export const kafkaBootstrap = outputs.kafkaBootstrap;
export const redisPassword = outputs.redisPassword;
export const clusterSecret = outputs.clusterSecret;
export const clusterName = outputs.clusterName;
export const logGroups = outputs.logGroups;
export const redisEndpoint = outputs.redisEndpoint;
