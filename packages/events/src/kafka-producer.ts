import { randomUUID } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import type { Logger } from "@chatgrid/broker";
import { type ChatgridEvent, EVENT_VERSION, type EventInput } from "@chatgrid/protocol";
import { type Admin, Kafka, logLevel, type Producer, type SASLOptions } from "kafkajs";
import { Counter, Gauge, type Registry } from "prom-client";
import type { EventProducer } from "./producer";
import { kafkaFailureHint } from "./security";

export interface KafkaEventProducerOptions {
  brokers: string[];
  /** TLS and SASL (kafkaClientSecurity); plaintext without authentication when absent. */
  ssl?: ConnectionOptions | boolean;
  sasl?: SASLOptions;
  topic: string;
  partitions: number;
  /** The node name: written into every event and used as the Kafka client id. */
  node: string;
  bufferSize: number;
  log: Logger;
  registry?: Registry;
  /** Longest pause between delivery attempts while Kafka is away. */
  maxBackoffMs?: number;
}

const BATCH = 500;

/**
 * kafkajs behind a bounded in-memory buffer: `emit` only appends (or counts a drop when full); one loop delivers
 * batches in order with an idempotent producer (acks all, one request in flight, key = sessionId so a session's
 * events stay in order on one partition), and retries with backoff while Kafka is away. One warning per outage.
 */
export class KafkaEventProducer implements EventProducer {
  private readonly queue: ChatgridEvent[] = [];
  private droppedCount = 0;
  private stopping = false;
  /** Set when stop()'s deadline passed: the loop gives up what is left. */
  private abandoned = false;
  private wake: (() => void) | undefined;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private topicReady = false;
  private outage = false;
  private droppingWarned = false;
  private readonly loopDone: Promise<void>;
  private readonly metrics;

  constructor(private readonly options: KafkaEventProducerOptions) {
    // kafkajs logs every failed retry; we log once per outage ourselves.
    this.kafka = new Kafka({
      clientId: options.node,
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 2000,
      requestTimeout: 5000,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
    });
    const registers = options.registry ? [options.registry] : [];
    const queue = this.queue;
    this.metrics = {
      dropped: new Counter({
        name: "chatgrid_events_dropped_total",
        help: "Events dropped: the buffer was full",
        registers,
      }),
      sent: new Counter({ name: "chatgrid_events_sent_total", help: "Events delivered to Kafka", registers }),
      buffered: new Gauge({
        name: "chatgrid_events_buffered",
        help: "Events waiting for Kafka",
        registers,
        collect() {
          this.set(queue.length);
        },
      }),
      up: new Gauge({ name: "chatgrid_kafka_up", help: "1 when the last delivery to Kafka succeeded", registers }),
    };
    this.loopDone = this.deliverLoop();
  }

  get buffered(): number {
    return this.queue.length;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  emit(input: EventInput): void {
    if (this.stopping) return;
    if (this.queue.length >= this.options.bufferSize) {
      this.droppedCount++;
      this.metrics.dropped.inc();
      if (!this.droppingWarned) {
        this.options.log.warn(
          { bufferSize: this.options.bufferSize },
          "event buffer full: dropping events until Kafka catches up",
        );
        this.droppingWarned = true;
      }
      return;
    }
    const event = {
      ...input,
      id: randomUUID(),
      v: EVENT_VERSION,
      at: new Date().toISOString(),
      node: this.options.node,
    } as ChatgridEvent;
    this.queue.push(event);
    this.wake?.();
  }

  /**
   * Connects (and creates the topic) at start, then delivers whatever is buffered, in order. While Kafka is away it
   * retries with backoff; stop() lets it deliver what it can until its deadline, then abandons the rest.
   */
  private async deliverLoop(): Promise<void> {
    let backoff = 200;
    const maxBackoff = this.options.maxBackoffMs ?? 5000;
    while (!this.abandoned) {
      if (this.stopping && this.queue.length === 0) return;
      if (this.producer && this.topicReady && this.queue.length === 0) {
        await this.pause();
        continue;
      }
      try {
        await this.connect();
        if (this.queue.length > 0) await this.deliverBatch();
        backoff = 200;
      } catch (error) {
        this.metrics.up.set(0);
        const message = error instanceof Error ? error.message : String(error);
        if (!this.outage) {
          this.outage = true;
          this.options.log.warn(
            { err: message, ...kafkaFailureHint(message), buffered: this.queue.length },
            "Kafka unreachable: buffering events and retrying",
          );
        }
        await this.producer?.disconnect().catch(() => undefined);
        this.producer = undefined;
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, maxBackoff);
      }
    }
  }

  /**
   * Waits for a new event or a stop; with `ms` (a backoff) only for the time or a stop, so events emitted during an
   * outage do not cut the backoff short.
   */
  private pause(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(finish, ms);
      this.wake = () => {
        if (ms === undefined || this.stopping) finish();
      };
    });
  }

  private async connect(): Promise<void> {
    if (!this.producer) {
      const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      await producer.connect();
      this.producer = producer;
    }
    if (!this.topicReady) await this.ensureTopic();
    this.metrics.up.set(1);
    if (this.outage && this.queue.length === 0) this.recovered();
  }

  private recovered(): void {
    this.outage = false;
    this.options.log.info(
      { buffered: this.queue.length, dropped: this.droppedCount },
      "Kafka reachable again: delivering buffered events",
    );
  }

  private async deliverBatch(): Promise<void> {
    const producer = this.producer;
    if (!producer) return;
    const batch = this.queue.slice(0, BATCH);
    await producer.send({
      topic: this.options.topic,
      acks: -1,
      messages: batch.map((event) => ({ key: keyOf(event), value: JSON.stringify(event) })),
    });
    this.queue.splice(0, batch.length);
    this.metrics.sent.inc(batch.length);
    this.droppingWarned = false;
    if (this.outage) this.recovered();
  }

  /** Creates the topic with the configured partitions if it does not exist (replication: the broker's default). */
  private async ensureTopic(): Promise<void> {
    const admin: Admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = await admin.listTopics();
      if (!existing.includes(this.options.topic)) {
        await admin.createTopics({
          topics: [{ topic: this.options.topic, numPartitions: this.options.partitions }],
          waitForLeaders: true,
        });
      }
      this.topicReady = true;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  async stop(timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    this.wake?.();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loopDone, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.abandoned = true;
    this.wake?.();
    await this.producer?.disconnect().catch(() => undefined);
  }
}

/** The partition key: the session (so its events stay in order), else the AI node for node-level events. */
function keyOf(event: ChatgridEvent): string {
  if ("sessionId" in event) return event.sessionId;
  return event.aiNode;
}
