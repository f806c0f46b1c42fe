import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { describeViolations, evaluate, evaluateDetailed } from "../testing/policy-harness";
import { mockEngine, type RegisteredResource } from "../testing/pulumi-mocks";
import { policies } from "./rules";

// The mocked aws stack, in every configuration the stack tests build (infra/stacks/aws.test.ts), against every rule
// of the pack: zero violations, and every rule applies to something (docs/policy.md).

const ECR_TOKEN = "aws:ecr/getAuthorizationToken:getAuthorizationToken";

async function buildAwsGraph(raw: Record<string, string>): Promise<RegisteredResource[]> {
  const engine = await mockEngine("aws", { invokes: { [ECR_TOKEN]: () => ({ userName: "AWS", password: "mock" }) } });
  pulumi.runtime.setAllConfig({ "aws:region": "us-east-1" });
  const { parseAwsStackConfig } = await import("../stacks/aws-config");
  const { buildAwsStack } = await import("../stacks/aws");
  buildAwsStack(parseAwsStackConfig(raw, "us-east-1"));
  await engine.settle();
  return engine.resources;
}

const CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

describe("the mocked aws stack against the policy pack", () => {
  it.each<[string, Record<string, string>]>([
    ["defaults (3 + 3, ARM64, MSK)", {}],
    [
      "1 + 1, X86_64, a certificate",
      { gatewayNodes: "1", aiNodes: "1", cpuArchitecture: "X86_64", certificateArn: CERTIFICATE },
    ],
    [
      "6 + 4, three zones, NAT per zone, endpoints",
      {
        gatewayNodes: "6",
        aiNodes: "4",
        availabilityZones: "us-east-1a,us-east-1b,us-east-1c",
        natGateways: "perAz",
        vpcEndpoints: "true",
      },
    ],
    ["Kafka off, openai with a key", { kafkaMode: "off", provider: "openai", openaiApiKey: "sk-test" }],
  ])("%s: no violation", async (_label, raw) => {
    const resources = await buildAwsGraph(raw);
    expect(describeViolations(await evaluate(resources))).toEqual([]);
  });

  it("every rule applies to the default stack (the HTTPS redirect rule may wait for a certificate)", async () => {
    const result = await evaluateDetailed(await buildAwsGraph({}));
    const applied = Object.keys(result.applied);
    const idle = policies.map((p) => p.name).filter((name) => !applied.includes(name));
    // The HTTPS redirect rule is about stacks with an HTTPS listener: the certificate configuration above has one.
    expect(idle.filter((name) => name !== "alb-http-redirects-to-https")).toEqual([]);
  });

  it("a weakened stack is caught: a task with a writable root filesystem and ECS Exec on", async () => {
    const resources = await buildAwsGraph({ gatewayNodes: "1", aiNodes: "1" });
    const task = resources.find((r) => r.type === "aws:ecs/taskDefinition:TaskDefinition")!;
    const defs = JSON.parse(task.inputs.containerDefinitions as string) as Record<string, unknown>[];
    task.inputs.containerDefinitions = JSON.stringify(defs.map((d) => ({ ...d, readonlyRootFilesystem: false })));
    const service = resources.find((r) => r.type === "aws:ecs/service:Service")!;
    service.inputs.enableExecuteCommand = true;
    const found = describeViolations(await evaluate(resources, { outputs: "inputs" }));
    expect(found.some((line) => line.includes("ecs-container-readonly-root-filesystem"))).toBe(true);
    expect(found.some((line) => line.includes("ecs-service-no-execute-command"))).toBe(true);
  });
});
