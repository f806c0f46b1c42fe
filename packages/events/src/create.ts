import type { Logger } from "@chatgrid/broker";
import type { Registry } from "prom-client";
import { type EventsEnv, parseBrokers } from "./config";
import { KafkaEventProducer } from "./kafka-producer";
import { DisabledEventProducer, type EventProducer } from "./producer";

/**
 * The node's event producer from its configuration. Misconfiguration never stops a node: without brokers events are
 * off, with an unusable broker list they are off with one clear error; either is said once at start.
 */
export function createEventProducer(env: EventsEnv, node: string, log: Logger, registry?: Registry): EventProducer {
  if (!env.KAFKA_BROKERS.trim()) {
    log.info("events off: KAFKA_BROKERS is not set");
    return new DisabledEventProducer();
  }
  const parsed = parseBrokers(env.KAFKA_BROKERS);
  if ("error" in parsed) {
    log.error(`events off: ${parsed.error} (chat is not affected)`);
    return new DisabledEventProducer();
  }
  log.info({ brokers: parsed.brokers, topic: env.KAFKA_TOPIC }, "events to Kafka");
  return new KafkaEventProducer({
    brokers: parsed.brokers,
    topic: env.KAFKA_TOPIC,
    partitions: env.KAFKA_PARTITIONS,
    node,
    bufferSize: env.EVENTS_BUFFER_SIZE,
    log,
    registry,
  });
}
