import { describe, expect, it } from "vitest";
import { AWS_CONFIG_KEYS, AWS_DEFAULTS, isFargateSize, parseAwsStackConfig } from "./aws-config";
import { parseStackConfig, STACK_CONFIG_KEYS } from "./config";
import { TARGET_ONLY_KEYS } from "./settings";

const problems = (run: () => unknown): string[] => {
  try {
    run();
  } catch (error) {
    return String((error as Error).message)
      .split("\n")
      .slice(1, -1)
      .map((line) => line.trim());
  }
  throw new Error("expected the configuration to be refused");
};

describe("the two targets' keys", () => {
  it("each target's keys are the shared ones plus exactly its own list; no key is in both lists", () => {
    const shared = STACK_CONFIG_KEYS.filter((k) => AWS_CONFIG_KEYS.includes(k)).sort();
    expect(STACK_CONFIG_KEYS.filter((k) => !shared.includes(k)).sort()).toEqual([...TARGET_ONLY_KEYS.local].sort());
    expect(AWS_CONFIG_KEYS.filter((k) => !shared.includes(k)).sort()).toEqual([...TARGET_ONLY_KEYS.aws].sort());
    expect(shared).toContain("gatewayNodes");
    expect(shared).toContain("aiNodes");
  });

  it("a key of the other target is an error that names the target, in both directions", () => {
    expect(problems(() => parseAwsStackConfig({ debugPorts: "true", httpPort: "80" }, "us-east-1"))).toEqual([
      "chatgrid:debugPorts: a setting of the local stack, not of aws (remove it: pulumi config rm chatgrid:debugPorts)",
      "chatgrid:httpPort: a setting of the local stack, not of aws (remove it: pulumi config rm chatgrid:httpPort)",
    ]);
    expect(problems(() => parseStackConfig({ certificateArn: "x", webTasks: "2" }))).toEqual([
      "chatgrid:certificateArn: a setting of the aws stack, not of local (remove it: pulumi config rm chatgrid:certificateArn)",
      "chatgrid:webTasks: a setting of the aws stack, not of local (remove it: pulumi config rm chatgrid:webTasks)",
    ]);
  });
});

describe("parseAwsStackConfig", () => {
  it("defaults: 3 + 3, 2 web tasks, ARM64, the brief's sizes, one NAT, Valkey 8.0, MSK on, 30 days of logs", () => {
    const config = parseAwsStackConfig({}, "eu-west-1");
    expect(config).toMatchObject({
      region: "eu-west-1",
      availabilityZones: ["eu-west-1a", "eu-west-1b"],
      webTasks: 2,
      cpuArchitecture: "ARM64",
      tasks: AWS_DEFAULTS.tasks,
      natGateways: "single",
      vpcEndpoints: false,
      redis: { engine: "valkey", engineVersion: "8.0", nodeType: "cache.t4g.small" },
      kafka: { brokerType: "kafka.t3.small", version: "3.9.x", volumeGiB: 10, topic: "chatgrid.events", partitions: 3 },
      logRetentionDays: 30,
      secretRecoveryWindowDays: 7,
      deletionProtection: false,
    });
    expect(config.topology.gatewayNodes).toBe(3);
    expect(config.topology.aiNodes).toBe(3);
    expect(config.certificateArn).toBeUndefined();
  });

  it("every key set: the values come through typed; kafkaMode off means no Kafka at all", () => {
    const config = parseAwsStackConfig(
      {
        gatewayNodes: "6",
        aiNodes: "4",
        availabilityZones: "us-east-1a, us-east-1b,us-east-1c",
        cpuArchitecture: "X86_64",
        gatewayTask: "1024/2048",
        webTasks: "3",
        natGateways: "perAz",
        vpcEndpoints: "true",
        redisEngine: "redis",
        kafkaMode: "off",
        logRetentionDays: "90",
        certificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        publicOrigin: "https://chat.example.com",
        secretRecoveryWindowDays: "0",
      },
      "us-east-1",
    );
    expect(config).toMatchObject({
      availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"],
      cpuArchitecture: "X86_64",
      tasks: { gateway: { cpu: 1024, memory: 2048 } },
      webTasks: 3,
      natGateways: "perAz",
      vpcEndpoints: true,
      redis: { engine: "redis", engineVersion: "7.1" },
      kafka: undefined,
      logRetentionDays: 90,
      publicOrigin: "https://chat.example.com",
      secretRecoveryWindowDays: 0,
    });
    expect(config.topology.kafka.enabled).toBe(false);
    expect(config.topology.gatewayNodes).toBe(6);
  });

  it("wrong values: every problem at once, each line naming the key and what it expects", () => {
    expect(
      problems(() =>
        parseAwsStackConfig(
          {
            availabilityZones: "us-east-1a",
            gatewayTask: "256/4096",
            cpuArchitecture: "arm64",
            logRetentionDays: "0",
            secretRecoveryWindowDays: "3",
            certificateArn: "arn:aws:iam::123:cert",
            publicOrigin: "https://chat.example.com/app",
            kafkaVersion: "2.8.1",
          },
          "us-east-1",
        ),
      ),
    ).toEqual([
      'chatgrid:availabilityZones: at least 2 availability zones (ElastiCache Multi-AZ and one MSK broker per zone need them) (got "us-east-1a")',
      'chatgrid:cpuArchitecture: expected one of ARM64, X86_64 (got "arm64")',
      'chatgrid:gatewayTask: not a Fargate size (CPU 256 takes 512, 1024 or 2048 MiB; 512: 1024–4096; 1024: 2048–8192; …) (got "256/4096")',
      'chatgrid:kafkaVersion: MSK\'s topic API (the program owns the events topic) needs Kafka 3.6 or later (got "2.8.1")',
      `chatgrid:logRetentionDays: expected one of CloudWatch's retentions: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (got "0")`,
      'chatgrid:certificateArn: expected an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) (got "arn:aws:iam::123:cert")',
      'chatgrid:publicOrigin: expected an origin such as https://chat.example.com (no path) (got "https://chat.example.com/app")',
      'chatgrid:secretRecoveryWindowDays: expected 0 (delete at once) or 7 to 30 days (got "3")',
    ]);
  });

  it("cross-key checks: zones of another region, a certificate elsewhere, http with a certificate, no region", () => {
    expect(
      problems(() =>
        parseAwsStackConfig(
          {
            availabilityZones: "us-east-1a,eu-west-1b",
            certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            publicOrigin: "http://chat.example.com",
          },
          "us-east-1",
        ),
      ),
    ).toEqual([
      "chatgrid:availabilityZones: eu-west-1b not in us-east-1 (aws:region)",
      "chatgrid:certificateArn: the certificate must be in us-east-1, the load balancer's region",
      'chatgrid:publicOrigin: with a certificate the origin is https:// (got "http://chat.example.com")',
    ]);
    expect(problems(() => parseAwsStackConfig({}, undefined))).toEqual([
      "aws:region: required (pulumi config set aws:region us-east-1)",
    ]);
  });

  it("Fargate sizes: the valid pairs and the invalid ones", () => {
    for (const ok of ["256/512", "256/2048", "512/1024", "512/4096", "1024/8192", "4096/30720", "8192/61440"]) {
      const [cpu, memory] = ok.split("/").map(Number) as [number, number];
      expect(isFargateSize({ cpu, memory }), ok).toBe(true);
    }
    for (const bad of ["256/1536", "512/512", "512/1536", "300/1024", "8192/20000", "16384/32000"]) {
      const [cpu, memory] = bad.split("/").map(Number) as [number, number];
      expect(isFargateSize({ cpu, memory }), bad).toBe(false);
    }
  });
});
