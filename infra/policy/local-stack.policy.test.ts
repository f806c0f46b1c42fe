import { describe, expect, it } from "vitest";
import { describeViolations, type Evaluation, evaluateDetailed, withMockedOutputs } from "../testing/policy-harness";
import { fakeImageId, mockEngine, type RegisteredResource, resolved } from "../testing/pulumi-mocks";
import { policies } from "./rules";

// The Docker stack `local`, mocked as infra/stacks/local.test.ts builds it, against every rule of the pack. Almost
// every rule is about AWS resources and does not apply; the one that does (images pinned by digest) must pass, and
// no rule may fail or throw on Docker resources (docs/policy.md "Which rules apply to the local stack").

/** The local stack with its default configuration on a fresh mocked engine (as buildGraph does). */
async function buildLocalGraph(raw: Record<string, string> = {}): Promise<RegisteredResource[]> {
  const engine = await mockEngine("local");
  const { parseStackConfig } = await import("../stacks/config");
  const { buildLocalStack } = await import("../stacks/local");
  const stack = buildLocalStack(parseStackConfig(raw));
  const containers = [
    stack.redis.container,
    ...(stack.kafka ? [stack.kafka.container] : []),
    ...stack.aiNodes.containers,
    ...stack.gateways.containers,
    stack.nginx.container,
    stack.web.container,
  ];
  await Promise.all(containers.map((c) => resolved(c.id)));
  await engine.settle();
  return engine.resources;
}

describe("the mocked local stack against the policy pack", () => {
  let resources: RegisteredResource[];
  let result: Evaluation;

  it("builds and evaluates", async () => {
    resources = await buildLocalGraph({ gatewayNodes: "2", aiNodes: "2" });
    result = await evaluateDetailed(resources);
  });

  it("has no violation of any rule", () => {
    expect(describeViolations(result.violations)).toEqual([]);
  });

  it("only images-pinned-by-digest applies: to every container and every pulled image", () => {
    const containers = resources.filter((r) => r.type === "docker:index/container:Container").map((r) => r.name);
    const pulled = resources.filter((r) => r.type === "docker:index/remoteImage:RemoteImage").map((r) => r.name);
    // redis, kafka, nginx, web, 2 gateways, 2 AI nodes; redis, kafka, nginx pulled.
    expect(containers).toHaveLength(8);
    expect(pulled).toHaveLength(3);
    expect(Object.keys(result.applied)).toEqual(["images-pinned-by-digest"]);
    expect(result.applied["images-pinned-by-digest"]?.sort()).toEqual([...containers, ...pulled].sort());
  });

  it("every rule declares itself not applicable to the rest (stack rules once, resource rules per resource)", () => {
    expect([...new Set(result.notApplicable.map((n) => n.policy))].sort()).toEqual(policies.map((p) => p.name).sort());
    const skippedByImages = result.notApplicable.filter((n) => n.policy === "images-pinned-by-digest");
    expect(skippedByImages.length).toBeGreaterThan(0);
    const checkedTypes = ["docker:index/container:Container", "docker:index/remoteImage:RemoteImage"];
    expect(skippedByImages.filter((n) => checkedTypes.includes(n.type ?? ""))).toEqual([]);
    const stackRules = result.notApplicable
      .filter((n) => n.resource === undefined)
      .map((n) => `${n.policy}: ${n.reason}`);
    expect(stackRules.sort()).toEqual([
      "alb-http-redirects-to-https: no listener",
      "ecr-lifecycle-policy-per-repository: no ECR repository",
      "lb-single-internet-facing: no load balancer",
      "sg-world-ingress-entry-only: no security group ingress rule",
    ]);
  });

  it("stack policies see the mocked engine's outputs (its recorded state), not only the inputs", () => {
    const pulled = withMockedOutputs(resources).filter((r) => r.type === "docker:index/remoteImage:RemoteImage");
    expect(pulled).toHaveLength(3);
    for (const image of pulled) expect(image.outputs?.imageId, image.name).toBe(fakeImageId(image.name));
  });
});
