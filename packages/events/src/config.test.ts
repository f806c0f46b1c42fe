import { parseEnv } from "@chatgrid/broker";
import { describe, expect, it } from "vitest";
import { eventsEnvSchema } from "./config";

const load = (env: Record<string, string>) => parseEnv(eventsEnvSchema, env);
const problem = (env: Record<string, string>) => {
  try {
    load(env);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a configuration error");
};

describe("events settings: TLS and SASL", () => {
  it("defaults: no TLS, no CA file, no SASL, no region", () => {
    const env = load({});
    expect(env).toMatchObject({ KAFKA_SSL: false, KAFKA_SASL_MECHANISM: "none" });
    expect(env.KAFKA_SSL_CA_FILE).toBeUndefined();
    expect(env.KAFKA_AWS_REGION).toBeUndefined();
    expect(env.AWS_REGION).toBeUndefined();
  });

  it("empty values mean unset (a container spec's `NAME=`)", () => {
    const env = load({ KAFKA_SSL: "", KAFKA_SSL_CA_FILE: " ", KAFKA_SASL_MECHANISM: "", KAFKA_AWS_REGION: "" });
    expect(env).toMatchObject({ KAFKA_SSL: false, KAFKA_SASL_MECHANISM: "none" });
    expect(env.KAFKA_SSL_CA_FILE).toBeUndefined();
    expect(env.KAFKA_AWS_REGION).toBeUndefined();
  });

  it("KAFKA_SSL takes true/false/1/0/yes/no; anything else is refused", () => {
    for (const [value, on] of [
      ["true", true],
      ["1", true],
      ["yes", true],
      ["false", false],
      ["0", false],
      ["no", false],
    ] as const) {
      expect(load({ KAFKA_SSL: value }).KAFKA_SSL).toBe(on);
    }
    expect(problem({ KAFKA_SSL: "tls" })).toBe(
      'invalid configuration:\n  KAFKA_SSL: Invalid option: expected one of "0"|"1"|"true"|"false"|"yes"|"no"',
    );
  });

  it("KAFKA_SASL_MECHANISM: none or msk-iam, in any case and with spaces", () => {
    expect(load({ KAFKA_SASL_MECHANISM: "none" }).KAFKA_SASL_MECHANISM).toBe("none");
    expect(load({ KAFKA_SASL_MECHANISM: "msk-iam" }).KAFKA_SASL_MECHANISM).toBe("msk-iam");
    expect(load({ KAFKA_SASL_MECHANISM: " MSK-IAM " }).KAFKA_SASL_MECHANISM).toBe("msk-iam");
  });

  it("kafkajs' `aws` mechanism is refused: it is not MSK IAM", () => {
    const message =
      'invalid configuration:\n  KAFKA_SASL_MECHANISM: "aws" is kafkajs\' AWS mechanism, not MSK IAM: it sends ' +
      "access keys in a custom payload that MSK does not accept; use msk-iam";
    expect(problem({ KAFKA_SASL_MECHANISM: "aws" })).toBe(message);
    expect(problem({ KAFKA_SASL_MECHANISM: "AWS" })).toBe(message);
  });

  it("an unknown mechanism is refused with the accepted ones", () => {
    expect(problem({ KAFKA_SASL_MECHANISM: "scram-sha-512" })).toBe(
      'invalid configuration:\n  KAFKA_SASL_MECHANISM: "scram-sha-512" is not supported; use one of: none, msk-iam',
    );
  });

  it("the CA file and the regions are kept as given (trimmed)", () => {
    const env = load({ KAFKA_SSL_CA_FILE: " /etc/ca.pem ", KAFKA_AWS_REGION: "eu-west-1", AWS_REGION: "us-east-1" });
    expect(env).toMatchObject({
      KAFKA_SSL_CA_FILE: "/etc/ca.pem",
      KAFKA_AWS_REGION: "eu-west-1",
      AWS_REGION: "us-east-1",
    });
  });
});
