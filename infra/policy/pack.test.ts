import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import type * as analyzerGrpc from "@pulumi/pulumi/proto/analyzer_grpc_pb";
import type * as analyzer from "@pulumi/pulumi/proto/analyzer_pb";
import type * as empty from "google-protobuf/google/protobuf/empty_pb";
import type * as struct from "google-protobuf/google/protobuf/struct_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UNKNOWN_VALUE } from "../testing/policy-harness";
import { policies } from "./rules";

// The pack as the Pulumi CLI runs it (docs/policy.md "What was verified"): the Node.js runner the language host
// launches for a policy pack (@pulumi/pulumi/cmd/run-policy-pack) loads infra/policy from its package.json "main",
// @pulumi/policy's server prints its port, and the engine's analyzer RPCs (over gRPC) get the rules' verdicts.

const PACK = import.meta.dirname;
const REPO = join(PACK, "..", "..");

// The gRPC and protobuf modules @pulumi/pulumi itself uses (the messages must come from the same copies).
const fromPulumi = createRequire(createRequire(import.meta.url).resolve("@pulumi/pulumi/package.json"));
const grpcJs = fromPulumi("@grpc/grpc-js") as typeof grpc;
const pb = fromPulumi("./proto/analyzer_pb") as typeof analyzer;
const { AnalyzerClient } = fromPulumi("./proto/analyzer_grpc_pb") as typeof analyzerGrpc;
const { Struct } = fromPulumi("google-protobuf/google/protobuf/struct_pb") as typeof struct;
const { Empty } = fromPulumi("google-protobuf/google/protobuf/empty_pb") as typeof empty;
const RUNNER = fromPulumi.resolve("./cmd/run-policy-pack");

const call = <Req, Res>(
  method: (request: Req, callback: (error: grpc.ServiceError | null, response: Res) => void) => unknown,
  request: Req,
) =>
  new Promise<Res>((resolve, reject) => {
    method(request, (error, response) => (error ? reject(error) : resolve(response)));
  });

const options = () => new pb.AnalyzerResourceOptions();
function analyzeRequest(type: string, name: string, props: Record<string, unknown>): analyzer.AnalyzeRequest {
  return new pb.AnalyzeRequest()
    .setType(type)
    .setName(name)
    .setUrn(`urn:pulumi:aws::chatgrid::${type}::${name}`)
    .setProperties(Struct.fromJavaScript(props as Parameters<typeof Struct.fromJavaScript>[0]))
    .setOptions(options());
}
const diagnostics = (response: analyzer.AnalyzeResponse) =>
  response.getDiagnosticsList().map((d) => ({
    policy: d.getPolicyname(),
    level: d.getEnforcementlevel(),
    message: d.getMessage(),
    urn: d.getUrn(),
  }));

const containerDefinitions = JSON.stringify([
  {
    name: "gateway",
    image: `123456789012.dkr.ecr.us-east-1.amazonaws.com/gateway@sha256:${"0".repeat(64)}`,
    readonlyRootFilesystem: false,
    stopTimeout: 20,
    healthCheck: { command: ["CMD", "true"] },
    logConfiguration: {
      logDriver: "awslogs",
      options: { "awslogs-group": "/g", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "g" },
    },
    environment: [],
  },
]);

describe("the policy pack served to the Pulumi CLI", () => {
  let child: ChildProcess;
  let client: analyzerGrpc.AnalyzerClient;
  let stderr = "";

  beforeAll(async () => {
    // What the language host runs for `--policy-pack infra/policy`: node <runner> <engine address> <pack directory>,
    // in the pack's directory (PolicyPack reads ./package.json for its version).
    child = spawn(process.execPath, [RUNNER, "127.0.0.1:0", PACK], { cwd: PACK, stdio: ["ignore", "pipe", "pipe"] });
    child.stderr?.on("data", (chunk) => {
      stderr += String(chunk);
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk) => {
        out += String(chunk);
        const line = out.split("\n")[0]?.trim();
        if (out.includes("\n") && line && /^\d+$/.test(line)) resolve(Number(line));
      });
      child.on("exit", (code) => reject(new Error(`the pack exited (${code}) before serving: ${stderr}`)));
    });
    client = new AnalyzerClient(`127.0.0.1:${port}`, grpcJs.credentials.createInsecure());
  }, 60_000);

  afterAll(() => {
    client?.close();
    child?.kill();
  });

  it("describes itself: name, version from package.json, every rule with its enforcement level", async () => {
    const info = await call<empty.Empty, analyzer.AnalyzerInfo>(client.getAnalyzerInfo.bind(client), new Empty());
    expect(info.getName()).toBe("chatgrid-aws");
    expect(info.getVersion()).toBe(JSON.parse(readFileSync(join(PACK, "package.json"), "utf8")).version);
    expect(info.getPoliciesList().map((p) => p.getName())).toEqual(policies.map((p) => p.name));
    expect(new Set(info.getPoliciesList().map((p) => p.getEnforcementlevel()))).toEqual(
      new Set([pb.EnforcementLevel.MANDATORY]),
    );
  });

  it("analyzes a resource's inputs: a violation is mandatory, with the description and the rule's message", async () => {
    const response = await call<analyzer.AnalyzeRequest, analyzer.AnalyzeResponse>(
      client.analyze.bind(client),
      analyzeRequest("aws:ecs/taskDefinition:TaskDefinition", "gateway-1", {
        family: "gateway-1",
        containerDefinitions,
        runtimePlatform: { cpuArchitecture: "ARM64" },
      }),
    );
    expect(diagnostics(response)).toEqual([
      {
        policy: "ecs-container-readonly-root-filesystem",
        level: pb.EnforcementLevel.MANDATORY,
        message: `${policies[0]!.description}\ncontainer "gateway": readonlyRootFilesystem is false, not true`,
        urn: "",
      },
    ]);
  });

  it("during preview an unknown input skips the rules that read it (not applicable), with no diagnostic", async () => {
    const response = await call<analyzer.AnalyzeRequest, analyzer.AnalyzeResponse>(
      client.analyze.bind(client),
      analyzeRequest("aws:ecs/taskDefinition:TaskDefinition", "gateway-1", {
        family: "gateway-1",
        containerDefinitions: UNKNOWN_VALUE,
        runtimePlatform: { cpuArchitecture: "ARM64" },
      }),
    );
    expect(diagnostics(response)).toEqual([]);
    const skipped = response
      .getNotApplicableList()
      .filter((n) => n.getReason().includes("unknown during preview"))
      .map((n) => n.getPolicyName());
    expect(skipped).toEqual([
      "ecs-container-readonly-root-filesystem",
      "ecs-container-awslogs",
      "ecs-essential-container-health-check",
      "ecs-container-stop-timeout",
      "ecs-no-secrets-in-environment",
      "images-pinned-by-digest",
    ]);
  });

  it("hands the rules secrets unwrapped", async () => {
    const secret = (value: string) => ({
      "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
      value,
    });
    const redis = (authToken: unknown) =>
      call<analyzer.AnalyzeRequest, analyzer.AnalyzeResponse>(
        client.analyze.bind(client),
        analyzeRequest("aws:elasticache/replicationGroup:ReplicationGroup", "redis", {
          description: "chatgrid",
          clusterMode: "disabled",
          transitEncryptionEnabled: true,
          transitEncryptionMode: "required",
          atRestEncryptionEnabled: true,
          numCacheClusters: 1,
          authToken,
        }),
      );
    // A wrapped value would be an object, not a token: only the unwrapped one passes.
    expect(diagnostics(await redis(secret("a".repeat(64))))).toEqual([]);
    expect(diagnostics(await redis(secret(""))).map((d) => `${d.policy}: ${d.message.split("\n")[1]}`)).toEqual([
      "elasticache-auth: no authToken, authTokenWo or userGroupIds: any client that reaches port 6379 is served",
    ]);
  });

  it("analyzes the stack's outputs with the stack policies", async () => {
    const lb = (name: string) =>
      new pb.AnalyzerResource()
        .setType("aws:lb/loadBalancer:LoadBalancer")
        .setName(name)
        .setUrn(`urn:pulumi:aws::chatgrid::aws:lb/loadBalancer:LoadBalancer::${name}`)
        .setProperties(Struct.fromJavaScript({ internal: false, loadBalancerType: "application" }))
        .setOptions(options());
    const response = await call<analyzer.AnalyzeStackRequest, analyzer.AnalyzeResponse>(
      client.analyzeStack.bind(client),
      new pb.AnalyzeStackRequest().setResourcesList([lb("entry"), lb("admin")]),
    );
    expect(
      diagnostics(response).map((d) => `${d.policy} ${d.urn.split("::").pop()}: ${d.message.split("\n")[1]}`),
    ).toEqual([
      "lb-single-internet-facing entry: 2 load balancers face the internet (entry, admin); only the entry may",
      "lb-single-internet-facing admin: 2 load balancers face the internet (entry, admin); only the entry may",
    ]);
    expect(stderr).toBe("");
  });
});

describe("the pack's files", () => {
  it("only infra/policy/index.ts constructs a PolicyPack (a second one in a process exits it)", () => {
    const constructing: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (entry === "node_modules" || entry.startsWith(".")) continue;
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.(ts|js|cjs|mjs)$/.test(entry) && /new PolicyPack\(/.test(readFileSync(path, "utf8"))) {
          constructing.push(relative(REPO, path));
        }
      }
    };
    walk(join(REPO, "infra"));
    // This file names it in a regular expression only.
    expect(constructing.filter((f) => f !== "infra/policy/pack.test.ts")).toEqual(["infra/policy/index.ts"]);
    expect(readFileSync(join(PACK, "index.ts"), "utf8")).toContain('new PolicyPack("chatgrid-aws", {\n  policies,');
  });

  it("PulumiPolicy.yaml declares Node.js; package.json has the version and the entry", () => {
    expect(readFileSync(join(PACK, "PulumiPolicy.yaml"), "utf8")).toMatch(/^runtime: nodejs$/m);
    const pkg = JSON.parse(readFileSync(join(PACK, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ version: "0.1.0", main: "pack.cjs", type: "module" });
  });
});
