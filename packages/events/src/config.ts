import { envInt } from "@chatgrid/broker";
import { z } from "zod";

/** Events settings, read the same way by gateways and AI nodes. No KAFKA_BROKERS: events are off. */
export const eventsEnvSchema = z.object({
  /** Bootstrap servers, `host:port,host:port`. Empty: events off (said once at start). */
  KAFKA_BROKERS: z.string().default(""),
  KAFKA_TOPIC: z.string().min(1).default("chatgrid.events"),
  /** Partitions of the topic when this node creates it. */
  KAFKA_PARTITIONS: envInt(3),
  /** Events kept in memory while Kafka is slow or away; beyond it new events are dropped and counted. */
  EVENTS_BUFFER_SIZE: envInt(10_000),
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
