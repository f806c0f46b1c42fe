import { randomUUID } from "node:crypto";
import { type ChatgridEvent, ChatgridEventSchema } from "@chatgrid/protocol";
import { type Consumer, Kafka, logLevel } from "kafkajs";
import { waitFor } from "./wait";

/** Reads the events topic from the beginning into memory, validating each event against the protocol schema. */
export class EventLog {
  readonly events: ChatgridEvent[] = [];
  readonly invalid: string[] = [];

  private constructor(private readonly consumer: Consumer) {}

  static async open(brokers: string, topic = "chatgrid.events"): Promise<EventLog> {
    const kafka = new Kafka({ clientId: "chatgrid-test", brokers: brokers.split(","), logLevel: logLevel.NOTHING });
    // Create the topic first: subscribing to a missing topic fails, and producers create it only on first delivery.
    const admin = kafka.admin();
    await admin.connect();
    if (!(await admin.listTopics()).includes(topic)) {
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }).catch(() => undefined);
    }
    await admin.disconnect();
    const consumer = kafka.consumer({ groupId: `test-${randomUUID()}`, retry: { retries: 20 } });
    const log = new EventLog(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const text = message.value?.toString() ?? "";
        const parsed = ChatgridEventSchema.safeParse(JSON.parse(text));
        if (parsed.success) log.events.push(parsed.data);
        else log.invalid.push(text);
      },
    });
    return log;
  }

  of(sessionId: string): ChatgridEvent[] {
    return this.events.filter((e) => "sessionId" in e && e.sessionId === sessionId);
  }

  /** Waits until `test` holds for the events received so far (Kafka delivers on its own schedule). */
  async until(what: string, test: (events: ChatgridEvent[]) => boolean, timeoutMs = 30_000): Promise<void> {
    await waitFor(what, () => test(this.events), timeoutMs, 100);
  }

  async close(): Promise<void> {
    await this.consumer.disconnect();
  }
}
