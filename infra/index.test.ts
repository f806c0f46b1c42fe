import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it, vi } from "vitest";
import { mockEngine, resolved } from "./testing/pulumi-mocks";

// infra/index.ts is the program `pulumi up` runs: it reads the stack's configuration from Pulumi itself. Here it is
// imported (after the mocks, and afresh for each case) with configuration set the way the Pulumi CLI sets it.

const REPO = join(import.meta.dirname, "..");

/** The `config:` map of a Pulumi stack file: `  chatgrid:key: value` lines (this file uses nothing else). */
function stackFileConfig(file: string): Record<string, string> {
  const config: Record<string, string> = {};
  let inConfig = false;
  for (const line of readFileSync(join(REPO, file), "utf8").split("\n")) {
    if (!line.trim() || line.trim().startsWith("#")) continue;
    if (line === "config:") {
      inConfig = true;
      continue;
    }
    const entry = /^ {2}([\w-]+:\w+):\s*(\S.*?)\s*$/.exec(line);
    expect(inConfig && entry, `${file}: unexpected line "${line}"`).toBeTruthy();
    config[entry![1]!] = entry![2]!.replace(/^"(.*)"$/, "$1");
  }
  return config;
}

async function runProgram(config: Record<string, string>, stack = "local") {
  // The one invoke the aws program makes: ECR's registry token for the image pushes.
  const engine = await mockEngine(stack, {
    invokes: {
      "aws:ecr/getAuthorizationToken:getAuthorizationToken": () => ({ userName: "AWS", password: "mock-token" }),
    },
  });
  pulumi.runtime.setAllConfig(config);
  vi.resetModules();
  const program = await import("./index");
  const outputs = await resolved({
    chatUrl: program.chatUrl,
    apiUrl: program.apiUrl,
    metricsUrl: program.metricsUrl,
    nodeNames: program.nodeNames,
    redisUrl: program.redisUrl,
    kafkaBootstrap: program.kafkaBootstrap,
  });
  const secretOutputs = {
    redisPassword: program.redisPassword ? await pulumi.isSecret(program.redisPassword) : undefined,
    clusterSecret: program.clusterSecret ? await pulumi.isSecret(program.clusterSecret) : undefined,
  };
  await engine.settle();
  const containers = engine.resources
    .filter((r) => r.type === "docker:index/container:Container")
    .map((r) => r.inputs.name as string);
  return { outputs, secretOutputs, containers, resources: engine.resources };
}

describe("the Pulumi project", () => {
  it("Pulumi.yaml: project chatgrid, Node.js runtime with TypeScript through tsx, main infra/ (→ infra/index.ts)", () => {
    const text = readFileSync(join(REPO, "Pulumi.yaml"), "utf8");
    expect(text).toMatch(/^name: chatgrid$/m);
    expect(text).toMatch(/^runtime:\n {2}name: nodejs\n {2}options:\n/m);
    expect(text).toMatch(/^ {4}typescript: false$/m);
    expect(text).toMatch(/^ {4}nodeargs: "--import tsx"$/m);
    expect(text).toMatch(/^main: infra\/$/m);
    // What Pulumi's Node.js host loads for `main: infra/` in an ESM package: infra/index.ts, through tsx.
    expect(JSON.parse(readFileSync(join(REPO, "infra", "package.json"), "utf8")).type).toBe("module");
    expect(existsSync(join(REPO, "infra", "index.ts"))).toBe(true);
    expect(existsSync(join(REPO, "infra", "index.js"))).toBe(false);
    expect(existsSync(join(REPO, "node_modules", "tsx", "package.json"))).toBe(true);
  });

  it("Pulumi.local.yaml holds the seed: 3 gateways, 3 AI nodes, 8080/8090/3000, debug ports off, Kafka on", async () => {
    const config = stackFileConfig("Pulumi.local.yaml");
    expect(config).toMatchObject({
      "chatgrid:gatewayNodes": "3",
      "chatgrid:aiNodes": "3",
      "chatgrid:httpPort": "8080",
      "chatgrid:metricsPort": "8090",
      "chatgrid:webPort": "3000",
      "chatgrid:debugPorts": "false",
      "chatgrid:kafka": "true",
    });
    const run = await runProgram(config);
    expect(run.outputs).toEqual({
      chatUrl: "http://localhost:3000",
      apiUrl: "http://localhost:8080",
      metricsUrl: "http://localhost:8090",
      nodeNames: { gateways: ["gateway-1", "gateway-2", "gateway-3"], aiNodes: ["ai-1", "ai-2", "ai-3"] },
    });
    // The generated Redis password and cluster secret are stack outputs, as secrets (`--show-secrets` reads them).
    expect(run.secretOutputs).toEqual({ redisPassword: true, clusterSecret: true });
    expect(run.containers.sort()).toEqual(
      [
        "chatgrid-redis",
        "chatgrid-kafka",
        "chatgrid-ai-1",
        "chatgrid-ai-2",
        "chatgrid-ai-3",
        "chatgrid-gateway-1",
        "chatgrid-gateway-2",
        "chatgrid-gateway-3",
        "chatgrid-nginx",
        "chatgrid-web",
      ].sort(),
    );
  });

  it("`pulumi config set chatgrid:gatewayNodes 5` and `chatgrid:aiNodes 2` are all it takes to scale", async () => {
    const run = await runProgram({
      ...stackFileConfig("Pulumi.local.yaml"),
      "chatgrid:gatewayNodes": "5",
      "chatgrid:aiNodes": "2",
      "chatgrid:debugPorts": "false",
    });
    expect(run.outputs.nodeNames).toEqual({
      gateways: ["gateway-1", "gateway-2", "gateway-3", "gateway-4", "gateway-5"],
      aiNodes: ["ai-1", "ai-2"],
    });
    expect(run.containers.filter((c) => c.includes("gateway"))).toHaveLength(5);
    expect(run.containers.filter((c) => c.includes("-ai-"))).toHaveLength(2);
    expect(run.outputs.redisUrl).toBeUndefined();
  });

  it("a wrong value stops the program before any resource, with the key and what it expects", async () => {
    const engine = await mockEngine("local");
    pulumi.runtime.setAllConfig({ "chatgrid:gatewayNodes": "0", "chatgrid:debugPorts": "maybe" });
    vi.resetModules();
    await expect(import("./index")).rejects.toThrow(
      /invalid chatgrid stack configuration:\n {2}chatgrid:gatewayNodes: at least 1 gateway node \(got "0"\)\n {2}chatgrid:debugPorts: expected true or false \(got "maybe"\)/,
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });

  it("Pulumi.aws.yaml: the aws program builds from it (3 + 3, its region), with the same output names and no secret output", async () => {
    const config = stackFileConfig("Pulumi.aws.yaml");
    expect(config).toMatchObject({
      "aws:region": "us-east-1",
      "chatgrid:gatewayNodes": "3",
      "chatgrid:aiNodes": "3",
      "chatgrid:cpuArchitecture": "ARM64",
      "chatgrid:kafkaMode": "provisioned",
    });
    const run = await runProgram(config, "aws");
    expect(run.outputs.nodeNames).toEqual({
      gateways: ["gateway-1", "gateway-2", "gateway-3"],
      aiNodes: ["ai-1", "ai-2", "ai-3"],
    });
    expect(run.outputs.chatUrl).toMatch(/^http:\/\/.+\.us-east-1\.elb\.amazonaws\.com$/);
    expect(run.outputs.apiUrl).toBe(run.outputs.chatUrl);
    expect(run.outputs.kafkaBootstrap).toMatch(/:9098/);
    expect(run.outputs.redisUrl).toBeUndefined();
    expect(run.secretOutputs).toEqual({ redisPassword: undefined, clusterSecret: undefined });
    expect(run.containers).toEqual([]);
    expect(run.resources.filter((r) => r.type === "aws:ecs/service:Service")).toHaveLength(7);
    // A Docker key in the aws stack is an error that says so.
    await expect(runProgram({ ...config, "chatgrid:debugPorts": "false" }, "aws")).rejects.toThrow(
      "chatgrid:debugPorts: a setting of the local stack, not of aws",
    );
  });

  it("a stack other than local and aws is refused by name", async () => {
    await mockEngine("staging");
    pulumi.runtime.setAllConfig({});
    vi.resetModules();
    await expect(import("./index")).rejects.toThrow('chatgrid has no program for stack "staging"');
  });
});
