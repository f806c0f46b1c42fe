import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePorts, REPO_ROOT } from "../../infra/runner";

/** Runs a real AI node process with `env` and resolves with how it ended (it must end on its own). */
async function runAiNode(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const [port, redisPort] = await freePorts(2);
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "apps", "ai", "src", "main.ts")], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      CLUSTER_SECRET: "s".repeat(32),
      // Nothing listens there: the node must stop on its configuration before Redis matters.
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PORT: String(port),
      REGISTER: "false",
      LOG_LEVEL: "silent",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stderr };
}

describe("a refused Kafka security setting stops a real node at start with the message", () => {
  it("KAFKA_SASL_MECHANISM=aws: exit code 2 (configuration), the reason and msk-iam named", async () => {
    const { code, stderr } = await runAiNode({ KAFKA_SASL_MECHANISM: "aws" });
    expect(code).toBe(2);
    expect(stderr).toContain(
      'chatgrid AI node: invalid configuration:\n  KAFKA_SASL_MECHANISM: "aws" is kafkajs\' AWS mechanism, not MSK ' +
        "IAM: it sends access keys in a custom payload that MSK does not accept; use msk-iam",
    );
  });

  it("msk-iam without TLS, on the plaintext port: the node does not start, every problem is named", async () => {
    const { code, stderr } = await runAiNode({
      KAFKA_BROKERS: "b-1.demo.kafka.us-east-1.amazonaws.com:9092",
      KAFKA_SASL_MECHANISM: "msk-iam",
      AWS_REGION: "us-east-1",
    });
    // Checked when the producer is created (it needs the broker list), so runNode reports a failed start.
    expect(code).toBe(1);
    expect(stderr).toContain("chatgrid AI node failed to start:");
    expect(stderr).toContain(
      "invalid configuration:\n" +
        "  KAFKA_SSL: must be true with KAFKA_SASL_MECHANISM=msk-iam (MSK accepts IAM over TLS only)\n" +
        '  KAFKA_BROKERS: "b-1.demo.kafka.us-east-1.amazonaws.com:9092" not on an MSK IAM port: msk-iam is served ' +
        "on 9098 (private) or 9198 (public access)",
    );
  });
});
