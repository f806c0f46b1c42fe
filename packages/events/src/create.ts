import type { Logger } from "@chatgrid/broker";
import type { Registry } from "prom-client";
import { type EventsEnv, parseBrokers } from "./config";
import { KafkaEventProducer } from "./kafka-producer";
import { DisabledEventProducer, type EventProducer } from "./producer";
import { kafkaClientSecurity, type SecurityDeps } from "./security";

/**
 * The node's event producer from its configuration. Where Kafka is does not stop a node: without brokers events are
 * off, with an unusable broker list they are off with one clear error; either is said once at start. How to talk to
 * Kafka does: a wrong TLS/SASL setting throws `invalid configuration: …`, so the node exits at start with that
 * message (runNode) instead of running without the events, or the protection, it was configured for
 * (docs/events.md "TLS and authentication").
 */
export function createEventProducer(
  env: EventsEnv,
  node: string,
  log: Logger,
  registry?: Registry,
  securityDeps?: SecurityDeps,
): EventProducer {
  if (!env.KAFKA_BROKERS.trim()) {
    log.info("events off: KAFKA_BROKERS is not set");
    return new DisabledEventProducer();
  }
  const parsed = parseBrokers(env.KAFKA_BROKERS);
  if ("error" in parsed) {
    log.error(`events off: ${parsed.error} (chat is not affected)`);
    return new DisabledEventProducer();
  }
  const security = kafkaClientSecurity(env, parsed.brokers, securityDeps);
  log.info(
    { brokers: parsed.brokers, topic: env.KAFKA_TOPIC, ssl: env.KAFKA_SSL, sasl: env.KAFKA_SASL_MECHANISM },
    "events to Kafka",
  );
  return new KafkaEventProducer({
    brokers: parsed.brokers,
    ...security,
    topic: env.KAFKA_TOPIC,
    partitions: env.KAFKA_PARTITIONS,
    node,
    bufferSize: env.EVENTS_BUFFER_SIZE,
    log,
    registry,
  });
}
