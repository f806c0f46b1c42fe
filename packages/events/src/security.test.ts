import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SASLOptions } from "kafkajs";
import pino from "pino";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { eventsEnvSchema } from "./config";
import { createEventProducer } from "./create";
import { DisabledEventProducer } from "./producer";
import { kafkaClientSecurity, kafkaFailureHint, type SecurityDeps } from "./security";

const dir = mkdtempSync(join(tmpdir(), "chatgrid-events-security-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const MSK = "b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9098";
const env = (values: Record<string, string>) => eventsEnvSchema.parse(values);
const security = (values: Record<string, string>, brokers = [MSK], deps?: SecurityDeps) =>
  kafkaClientSecurity(env(values), brokers, deps);
const problem = (values: Record<string, string>, brokers = [MSK]) => {
  try {
    security(values, brokers);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a configuration error");
};
/** The token provider kafkajs would call, from an oauthbearer SASL config. */
const tokenProvider = (sasl: SASLOptions | undefined) => {
  if (sasl?.mechanism !== "oauthbearer") throw new Error("expected oauthbearer");
  return sasl.oauthBearerProvider;
};
const mskIam = { KAFKA_SSL: "true", KAFKA_SASL_MECHANISM: "msk-iam", KAFKA_AWS_REGION: "us-east-1" };

describe("kafkaClientSecurity: TLS", () => {
  it("by default: plaintext, no SASL", () => {
    expect(security({}, ["127.0.0.1:9092"])).toEqual({ ssl: false, sasl: undefined });
  });

  it("KAFKA_SSL=true: TLS verified against Node's default CAs", () => {
    expect(security({ KAFKA_SSL: "true" }, ["127.0.0.1:9094"])).toEqual({ ssl: true, sasl: undefined });
  });

  it("KAFKA_SSL_CA_FILE: the bundle is read once and becomes the only trusted CA", () => {
    const file = join(dir, "ca.pem");
    writeFileSync(file, PEM);
    const readFile = vi.fn((path: string) => (path === file ? PEM : ""));
    expect(security({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: file }, ["k:9094"], { readFile })).toEqual({
      ssl: { ca: [PEM] },
      sasl: undefined,
    });
    expect(readFile).toHaveBeenCalledTimes(1);
    // And from the real file system by default.
    expect(security({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: file }, ["k:9094"]).ssl).toEqual({ ca: [PEM] });
  });

  it("a missing CA file names the setting and the path", () => {
    const file = join(dir, "missing.pem");
    expect(problem({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: file }, ["k:9094"])).toBe(
      `invalid configuration:\n  KAFKA_SSL_CA_FILE: cannot read "${file}" (ENOENT)`,
    );
  });

  it("an unreadable CA file (a directory) names the setting and the reason", () => {
    expect(problem({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: dir }, ["k:9094"])).toBe(
      `invalid configuration:\n  KAFKA_SSL_CA_FILE: cannot read "${dir}" (EISDIR)`,
    );
  });

  it("a CA file without a PEM certificate is refused", () => {
    const file = join(dir, "not-a-cert.pem");
    writeFileSync(file, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    expect(problem({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: file }, ["k:9094"])).toBe(
      `invalid configuration:\n  KAFKA_SSL_CA_FILE: "${file}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  });

  it("a CA file without KAFKA_SSL is refused rather than ignored (that would be plaintext)", () => {
    expect(problem({ KAFKA_SSL_CA_FILE: "/etc/ca.pem" }, ["k:9092"])).toBe(
      "invalid configuration:\n  KAFKA_SSL_CA_FILE: set while KAFKA_SSL is false (set KAFKA_SSL=true, or unset the file)",
    );
  });
});

describe("kafkaClientSecurity: msk-iam", () => {
  it("TLS and SASL/OAUTHBEARER with a token provider", () => {
    const result = security(mskIam);
    expect(result.ssl).toBe(true);
    expect(result.sasl).toMatchObject({ mechanism: "oauthbearer" });
    expect(typeof tokenProvider(result.sasl)).toBe("function");
  });

  it("accepts the private (9098) and public (9198) IAM ports", () => {
    expect(() => security(mskIam, [MSK, "b-2.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9198"])).not.toThrow();
  });

  it("signs a fresh token at every (re)connect, for KAFKA_AWS_REGION before AWS_REGION", async () => {
    const generateToken = vi.fn(async ({ region }: { region: string }) => ({
      token: `token-${region}-${generateToken.mock.calls.length}`,
      expiryTime: 0,
    }));
    const provide = (values: Record<string, string>) => tokenProvider(security(values, [MSK], { generateToken }).sasl);
    const provider = provide({ ...mskIam, KAFKA_AWS_REGION: "eu-west-1", AWS_REGION: "us-east-1" });
    expect(await provider()).toEqual({ value: "token-eu-west-1-1" });
    expect(await provider()).toEqual({ value: "token-eu-west-1-2" });
    const fallback = provide({ KAFKA_SSL: "true", KAFKA_SASL_MECHANISM: "msk-iam", AWS_REGION: "us-east-2" });
    expect(await fallback()).toEqual({ value: "token-us-east-2-3" });
  });

  it("the real signer, offline, with static credentials: a base64url presigned kafka-cluster:Connect URL", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    vi.stubEnv("AWS_SESSION_TOKEN", undefined);
    vi.stubEnv("AWS_PROFILE", undefined);
    // The instance metadata service is the chain's last resort; it must never be asked here.
    vi.stubEnv("AWS_EC2_METADATA_DISABLED", "true");
    const { value } = await tokenProvider(security(mskIam).sasl)();
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
    const url = new URL(Buffer.from(value, "base64url").toString("utf8"));
    expect(url.protocol).toBe("https:");
    expect(url.host).toBe("kafka.us-east-1.amazonaws.com");
    expect(url.searchParams.get("Action")).toBe("kafka-cluster:Connect");
    expect(url.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(url.searchParams.get("X-Amz-Credential")).toMatch(
      /^AKIAIOSFODNN7EXAMPLE\/\d{8}\/us-east-1\/kafka-cluster\/aws4_request$/,
    );
    expect(url.searchParams.get("X-Amz-Expires")).toBe("900");
    expect(url.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    // The secret key never travels, only a signature made with it.
    expect(url.toString()).not.toContain("wJalrXUtnFEMI");
  });

  it("requires KAFKA_SSL=true", () => {
    expect(problem({ ...mskIam, KAFKA_SSL: "false" })).toBe(
      "invalid configuration:\n  KAFKA_SSL: must be true with KAFKA_SASL_MECHANISM=msk-iam (MSK accepts IAM over TLS only)",
    );
  });

  it("requires a region: KAFKA_AWS_REGION or AWS_REGION", () => {
    expect(problem({ KAFKA_SSL: "true", KAFKA_SASL_MECHANISM: "msk-iam" })).toBe(
      "invalid configuration:\n  KAFKA_AWS_REGION: required with KAFKA_SASL_MECHANISM=msk-iam (the MSK cluster's " +
        "region); AWS_REGION is not set either",
    );
  });

  it("refuses brokers on other ports, naming them and the IAM ports", () => {
    const tls = "b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9094";
    const plain = "b-2.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9092";
    expect(problem(mskIam, [tls, MSK, plain])).toBe(
      `invalid configuration:\n  KAFKA_BROKERS: "${tls}", "${plain}" not on an MSK IAM port: msk-iam is served on ` +
        "9098 (private) or 9198 (public access)",
    );
  });

  it("reports every problem at once", () => {
    expect(problem({ KAFKA_SASL_MECHANISM: "msk-iam" }, ["k:9092"]).split("\n")).toEqual([
      "invalid configuration:",
      "  KAFKA_SSL: must be true with KAFKA_SASL_MECHANISM=msk-iam (MSK accepts IAM over TLS only)",
      "  KAFKA_AWS_REGION: required with KAFKA_SASL_MECHANISM=msk-iam (the MSK cluster's region); AWS_REGION is not set either",
      '  KAFKA_BROKERS: "k:9092" not on an MSK IAM port: msk-iam is served on 9098 (private) or 9198 (public access)',
    ]);
  });
});

describe("createEventProducer with security settings", () => {
  const log = pino({ level: "silent" });

  it("a wrong security setting throws at start (runNode exits with the message), not events off", () => {
    expect(() =>
      createEventProducer(
        env({ KAFKA_BROKERS: MSK, KAFKA_SASL_MECHANISM: "msk-iam", AWS_REGION: "us-east-1" }),
        "n",
        log,
      ),
    ).toThrow(
      "invalid configuration:\n  KAFKA_SSL: must be true with KAFKA_SASL_MECHANISM=msk-iam (MSK accepts IAM over TLS only)",
    );
  });

  it("no KAFKA_BROKERS: events off, and the security settings are not read (nothing to connect to)", () => {
    const producer = createEventProducer(
      env({ KAFKA_SASL_MECHANISM: "msk-iam", KAFKA_SSL_CA_FILE: "/none" }),
      "n",
      log,
    );
    expect(producer).toBeInstanceOf(DisabledEventProducer);
  });
});

describe("kafkaFailureHint: what the outage warning adds for failures retrying will not fix", () => {
  it("an untrusted certificate points at KAFKA_SSL_CA_FILE", () => {
    expect(kafkaFailureHint("Connection error: self-signed certificate in certificate chain")).toEqual({
      hint: "the brokers' TLS certificate is not trusted: KAFKA_SSL_CA_FILE must hold the CA that signed it",
    });
    expect(kafkaFailureHint("Connection error: unable to verify the first certificate").hint).toContain(
      "KAFKA_SSL_CA_FILE",
    );
  });

  it("a refused authentication points at the mechanism, region and IAM policy", () => {
    expect(kafkaFailureHint("SASL OAUTHBEARER authentication failed: Access denied")).toEqual({
      hint: "Kafka refused the authentication: check KAFKA_SASL_MECHANISM, the region and the IAM policy",
    });
  });

  it("an unreachable broker gets no hint", () => {
    expect(kafkaFailureHint("Connection error: connect ECONNREFUSED 127.0.0.1:9092")).toEqual({});
  });
});
