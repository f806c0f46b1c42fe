import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { type GenerateAuthTokenResponse, generateAuthToken } from "aws-msk-iam-sasl-signer-js";
import type { SASLOptions } from "kafkajs";
import type { EventsEnv } from "./config";

/** What `new Kafka({...})` gets for TLS and authentication. */
export interface KafkaClientSecurity {
  ssl: ConnectionOptions | boolean;
  sasl: SASLOptions | undefined;
}

/** The ports MSK serves IAM authentication on: 9098 inside the VPC, 9198 with public access. */
export const MSK_IAM_PORTS = [9098, 9198] as const;

export interface SecurityDeps {
  /** Reads KAFKA_SSL_CA_FILE (tests pass a fake). */
  readFile?: (path: string) => string;
  /** Signs an MSK IAM token; by default with the AWS default credential chain (env, ECS task role, …). */
  generateToken?: (options: { region: string }) => Promise<GenerateAuthTokenResponse>;
}

/**
 * TLS and SASL settings for the Kafka client from the environment, for a usable broker list. Called once at start:
 * the CA file is read here, never on a reconnect. A wrong security setting throws (every problem at once, in the
 * `invalid configuration:` form of parseEnv) instead of turning events off: it never heals by retrying, and a node
 * that quietly runs without events, or without the TLS it was told to use, hides the mistake (docs/events.md).
 */
export function kafkaClientSecurity(env: EventsEnv, brokers: string[], deps: SecurityDeps = {}): KafkaClientSecurity {
  const problems: string[] = [];
  const ssl = tlsOptions(env, deps.readFile ?? ((path) => readFileSync(path, "utf8")), problems);
  let sasl: SASLOptions | undefined;
  if (env.KAFKA_SASL_MECHANISM === "msk-iam") {
    if (!env.KAFKA_SSL) {
      problems.push("KAFKA_SSL: must be true with KAFKA_SASL_MECHANISM=msk-iam (MSK accepts IAM over TLS only)");
    }
    const region = env.KAFKA_AWS_REGION ?? env.AWS_REGION;
    if (!region) {
      problems.push(
        "KAFKA_AWS_REGION: required with KAFKA_SASL_MECHANISM=msk-iam (the MSK cluster's region); AWS_REGION is not set either",
      );
    }
    const wrongPort = brokers.filter((b) => !(MSK_IAM_PORTS as readonly number[]).includes(portOf(b)));
    if (wrongPort.length > 0) {
      problems.push(
        `KAFKA_BROKERS: ${wrongPort.map((b) => `"${b}"`).join(", ")} not on an MSK IAM port: ` +
          "msk-iam is served on 9098 (private) or 9198 (public access)",
      );
    }
    if (region) sasl = mskIamSasl(region, deps.generateToken ?? generateAuthToken);
  }
  if (problems.length > 0) throw new Error(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return { ssl, sasl };
}

function tlsOptions(
  env: EventsEnv,
  readFile: (path: string) => string,
  problems: string[],
): ConnectionOptions | boolean {
  const file = env.KAFKA_SSL_CA_FILE;
  if (file === undefined) return env.KAFKA_SSL;
  if (!env.KAFKA_SSL) {
    // Ignoring the file would mean plaintext where the operator expected a verified TLS connection.
    problems.push("KAFKA_SSL_CA_FILE: set while KAFKA_SSL is false (set KAFKA_SSL=true, or unset the file)");
    return false;
  }
  let pem: string;
  try {
    pem = readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    problems.push(`KAFKA_SSL_CA_FILE: cannot read "${file}" (${code})`);
    return true;
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    problems.push(`KAFKA_SSL_CA_FILE: "${file}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return true;
  }
  // `ca` replaces Node's default roots: only this bundle is trusted, which is what a private CA wants.
  return { ca: [pem] };
}

/**
 * SASL/OAUTHBEARER with an MSK IAM token (a base64url SigV4-presigned `kafka-cluster:Connect` URL). kafkajs calls
 * the provider at every authentication, so each (re)connect signs a fresh token with the current credentials (a
 * rotated ECS task role included); the token lives 15 minutes, longer than any connection setup needs.
 */
export function mskIamSasl(
  region: string,
  generateToken: (options: { region: string }) => Promise<GenerateAuthTokenResponse>,
): SASLOptions {
  return {
    mechanism: "oauthbearer",
    oauthBearerProvider: async () => ({ value: (await generateToken({ region })).token }),
  };
}

function portOf(broker: string): number {
  return Number(broker.slice(broker.lastIndexOf(":") + 1));
}

/**
 * What to check for a failure that retrying will not fix (the outage warning carries it): an untrusted certificate
 * or a refused authentication is configuration, not an unreachable broker.
 */
export function kafkaFailureHint(message: string): { hint?: string } {
  if (/certificate|self[- ]signed/i.test(message)) {
    return { hint: "the brokers' TLS certificate is not trusted: KAFKA_SSL_CA_FILE must hold the CA that signed it" };
  }
  if (/SASL|authenticat/i.test(message)) {
    return { hint: "Kafka refused the authentication: check KAFKA_SASL_MECHANISM, the region and the IAM policy" };
  }
  return {};
}
