/**
 * `npm run events [-- --session ID] [--type TYPE] [--brokers HOST:PORT] [--topic T] [--from-beginning]`
 * Tails the chatgrid events topic, one readable line per event. Brokers default to the running cluster's.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ChatgridEvent, ChatgridEventSchema } from "@chatgrid/protocol";
import { Kafka, logLevel } from "kafkajs";

/** One line: time, node, type, ids, then the event's own fields. */
export function formatEvent(event: ChatgridEvent): string {
  const { id: _id, v: _v, at, node, type, ...rest } = event;
  const ids = ["sessionId", "streamId"]
    .filter((k) => k in rest)
    .map((k) => `${k}=${(rest as Record<string, unknown>)[k]}`);
  const fields = Object.entries(rest)
    .filter(([k]) => k !== "sessionId" && k !== "streamId")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  return `${at.slice(11, 23)} ${node.padEnd(10)} ${type.padEnd(27)} ${[...ids, ...fields].join(" ")}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      session: { type: "string" },
      type: { type: "string" },
      brokers: { type: "string" },
      topic: { type: "string", default: "chatgrid.events" },
      "state-dir": { type: "string", default: ".chatgrid" },
      "from-beginning": { type: "boolean" },
    },
  });
  let brokers = values.brokers ?? process.env.KAFKA_BROKERS;
  const clusterFile = join(values["state-dir"] ?? ".chatgrid", "cluster.json");
  if (!brokers && existsSync(clusterFile))
    brokers = (JSON.parse(readFileSync(clusterFile, "utf8")) as { kafkaBrokers?: string }).kafkaBrokers;
  if (!brokers) {
    console.error("no Kafka to read: start the cluster with Kafka (npm start), or pass --brokers host:port");
    process.exit(1);
  }
  const kafka = new Kafka({
    clientId: "chatgrid-events-tail",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `chatgrid-tail-${randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({
    topic: values.topic ?? "chatgrid.events",
    fromBeginning: values["from-beginning"] ?? false,
  });
  console.error(
    `tailing ${values.topic} on ${brokers}${values.session ? ` for session ${values.session}` : ""}${values.type ? ` of type ${values.type}` : ""} (Ctrl-C stops)`,
  );
  await consumer.run({
    eachMessage: async ({ message }) => {
      const parsed = ChatgridEventSchema.safeParse(JSON.parse(message.value?.toString() ?? "null"));
      if (!parsed.success) return;
      const event = parsed.data;
      if (values.session && !("sessionId" in event && event.sessionId === values.session)) return;
      if (values.type && !event.type.startsWith(values.type)) return;
      console.log(formatEvent(event));
    },
  });
  const stop = () => void consumer.disconnect().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    console.error(`events: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
