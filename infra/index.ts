// The Pulumi program (Pulumi.yaml: main infra/). Thin on purpose: read and validate the stack's configuration, build
// the stack's program from infra/stacks/, export its outputs. Everything else is in infra/components/.
import * as pulumi from "@pulumi/pulumi";
import { readStackConfig } from "./stacks/config";
import { buildLocalStack } from "./stacks/local";

const stack = pulumi.getStack();
if (stack !== "local") {
  throw new Error(
    `chatgrid has no program for stack "${stack}": the Docker stack is "local" (pulumi stack select local)`,
  );
}

const { outputs } = buildLocalStack(readStackConfig());

export const chatUrl = outputs.chatUrl;
export const apiUrl = outputs.apiUrl;
export const metricsUrl = outputs.metricsUrl;
export const nodeNames = outputs.nodeNames;
export const redisUrl = outputs.redisUrl;
export const kafkaBootstrap = outputs.kafkaBootstrap;
// Secrets (shown as [secret]): `pulumi stack output redisPassword --show-secrets`.
export const redisPassword = outputs.redisPassword;
export const clusterSecret = outputs.clusterSecret;
