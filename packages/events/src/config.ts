import { envBool, envInt } from "@chatgrid/broker";
import { z } from "zod";

/** Empty variables (`KAFKA_SSL_CA_FILE=` in a container spec) mean "not set". */
const unsetIfEmpty = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);
const optionalString = () => z.preprocess(unsetIfEmpty, z.string().trim().optional());

/** How a node authenticates to Kafka (docs/events.md "TLS and authentication"). */
export const KAFKA_SASL_MECHANISMS = ["none", "msk-iam"] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/**
 * kafkajs' own `aws` mechanism is refused by name: it is not MSK IAM (it sends the access keys in a custom SASL
 * payload that MSK does not accept), and a look-alike name is exactly what an operator reaching for IAM would try.
 */
export function saslMechanismError(value: unknown): string {
  if (value === "aws") {
    return (
      '"aws" is kafkajs\' AWS mechanism, not MSK IAM: it sends access keys in a custom payload that MSK does not ' +
      "accept; use msk-iam"
    );
  }
  return `${JSON.stringify(value)} is not supported; use one of: ${KAFKA_SASL_MECHANISMS.join(", ")}`;
}

/** Events settings, read the same way by gateways and AI nodes. No KAFKA_BROKERS: events are off. */
export const eventsEnvSchema = z.object({
  /** Bootstrap servers, `host:port,host:port`. Empty: events off (said once at start). */
  KAFKA_BROKERS: z.string().default(""),
  KAFKA_TOPIC: z.string().min(1).default("chatgrid.events"),
  /** Partitions of the topic when this node creates it. */
  KAFKA_PARTITIONS: envInt(3),
  /** Events kept in memory while Kafka is slow or away; beyond it new events are dropped and counted. */
  EVENTS_BUFFER_SIZE: envInt(10_000),
  /** TLS to the brokers, verified against Node's CA roots (or KAFKA_SSL_CA_FILE's bundle). */
  KAFKA_SSL: envBool(false),
  /** A PEM CA bundle for brokers with a private CA; read once at start. Not needed for MSK (public Amazon CAs). */
  KAFKA_SSL_CA_FILE: optionalString(),
  /**
   * `none` or `msk-iam` (SASL/OAUTHBEARER with a signed token, docs/events.md). Checked here, when the config is
   * loaded, so a refused value stops the node with exit code 2 whether or not events are on.
   */
  KAFKA_SASL_MECHANISM: z.preprocess(
    (value) => (typeof value === "string" ? unsetIfEmpty(value.trim().toLowerCase()) : value),
    z.enum(KAFKA_SASL_MECHANISMS, { error: (issue) => saslMechanismError(issue.input) }).default("none"),
  ),
  /** The MSK cluster's region for msk-iam tokens; AWS_REGION (set by ECS) when empty. */
  KAFKA_AWS_REGION: optionalString(),
  AWS_REGION: optionalString(),
});
export type EventsEnv = z.infer<typeof eventsEnvSchema>;

const BROKER = /^[A-Za-z0-9._-]+:\d{1,5}$/;

/** The broker list, or the reason it is unusable (the node then runs with events off, and says why once). */
export function parseBrokers(value: string): { brokers: string[] } | { error: string } {
  const brokers = value
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  const bad = brokers.filter((b) => !BROKER.test(b));
  if (bad.length > 0) return { error: `KAFKA_BROKERS: ${bad.map((b) => `"${b}"`).join(", ")} is not host:port` };
  return { brokers };
}
