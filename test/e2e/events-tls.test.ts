import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newId } from "@chatgrid/broker";
import { createEventProducer, eventsEnvSchema } from "@chatgrid/events";
import { type ChatgridEvent, ChatgridEventSchema } from "@chatgrid/protocol";
import { Kafka, logLevel } from "kafkajs";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  defaultRestartPolicy,
  ensureBinaries,
  ensureKafkaJars,
  freePorts,
  kafkaReady,
  prepareKafkaBroker,
  REPO_ROOT,
  SupervisedProcess,
} from "../../infra/runner";
import { makeTestCertificates, type TestCertificates } from "../support/tls-certificate";

type LogLine = { level: number; msg: string; err?: string; [key: string]: unknown };

/** A real pino logger whose lines the test can read, and await (no polling of a log file). */
function capturedLog() {
  const lines: LogLine[] = [];
  const appended = new EventEmitter<{ line: [LogLine] }>();
  const log = pino(
    { level: "info" },
    {
      write(text: string) {
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        appended.emit("line", line);
      },
    },
  );
  const next = (test: (line: LogLine) => boolean) =>
    new Promise<LogLine>((resolve) => {
      const seen = lines.find(test);
      if (seen) return resolve(seen);
      const listener = (line: LogLine) => {
        if (!test(line)) return;
        appended.off("line", listener);
        resolve(line);
      };
      appended.on("line", listener);
    });
  return { log, lines, next };
}

async function metric(registry: Registry, name: string): Promise<number | undefined> {
  return (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

describe("events over TLS to a real Kafka broker (self-signed private CA)", () => {
  let dir: string;
  let certs: TestCertificates;
  let broker: SupervisedProcess;
  let tlsBrokers: string;
  const topic = `chatgrid.tls-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    ensureBinaries(["java"]);
    ensureKafkaJars(REPO_ROOT, (line) => console.log(`events-tls: ${line}`));
    dir = mkdtempSync(join(tmpdir(), "chatgrid-kafka-tls-"));
    certs = makeTestCertificates(dir);
    const [port, controllerPort, tlsPort] = await freePorts(3);
    const kafkaDir = join(dir, "kafka");
    mkdirSync(kafkaDir);
    const files = prepareKafkaBroker(REPO_ROOT, kafkaDir, port!, controllerPort!, {
      ssl: { port: tlsPort!, keystorePemFile: certs.keystorePemFile },
    });
    tlsBrokers = `127.0.0.1:${tlsPort}`;
    broker = new SupervisedProcess(
      {
        name: "kafka-tls",
        role: "kafka",
        command: files.command,
        args: files.args,
        port: port!,
        url: `kafka://127.0.0.1:${port}`,
        healthy: () => kafkaReady(`127.0.0.1:${port}`),
        logFile: join(dir, "kafka.log"),
        startTimeoutMs: 120_000,
      },
      { ...defaultRestartPolicy, enabled: false },
    );
    await broker.start();
  });

  afterAll(async () => {
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A kafkajs client of the test itself, over TLS, trusting the test CA. */
  const tlsClient = () =>
    new Kafka({
      clientId: "chatgrid-tls-test",
      brokers: [tlsBrokers],
      ssl: { ca: [readFileSync(certs.caFile, "utf8")] },
      logLevel: logLevel.NOTHING,
    });

  it("the TLS listener speaks only TLS: a plaintext client gets no answer from it", async () => {
    expect(await kafkaReady(tlsBrokers)).toBe(false);
  });

  it("KAFKA_SSL=true with KAFKA_SSL_CA_FILE: an event arrives and a consumer reads it back over TLS", async () => {
    const kafka = tlsClient();
    // Create the topic before subscribing: subscribing to a missing topic fails.
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const consumer = kafka.consumer({ groupId: `tls-test-${randomUUID()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const sessionId = newId("sess");
    const received = new Promise<ChatgridEvent>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          const event = ChatgridEventSchema.parse(JSON.parse(message.value?.toString() ?? ""));
          if ("sessionId" in event && event.sessionId === sessionId) resolve(event);
        },
      });
    });

    const { log, lines } = capturedLog();
    const registry = new Registry();
    const env = eventsEnvSchema.parse({
      KAFKA_BROKERS: tlsBrokers,
      KAFKA_TOPIC: topic,
      KAFKA_SSL: "true",
      KAFKA_SSL_CA_FILE: certs.caFile,
    });
    const producer = createEventProducer(env, "gateway-tls", log, registry);
    producer.emit({ type: "session.opened", sessionId, via: "rest", created: true });
    try {
      const event = await received;
      expect(event).toMatchObject({ type: "session.opened", sessionId, node: "gateway-tls", v: 1 });
    } finally {
      await producer.stop();
      await consumer.disconnect();
    }
    expect(await metric(registry, "chatgrid_events_sent_total")).toBe(1);
    expect(await metric(registry, "chatgrid_kafka_up")).toBe(1);
    expect(lines.find((l) => l.msg === "events to Kafka")).toMatchObject({ ssl: true, sasl: "none" });
    expect(lines.filter((l) => l.msg.startsWith("Kafka unreachable"))).toEqual([]);
  });

  it("the same producer without the CA: the certificate is not trusted, one warning, the event stays buffered", async () => {
    const { log, lines, next } = capturedLog();
    const registry = new Registry();
    const env = eventsEnvSchema.parse({ KAFKA_BROKERS: tlsBrokers, KAFKA_TOPIC: topic, KAFKA_SSL: "true" });
    const producer = createEventProducer(env, "gateway-untrusting", log, registry);
    producer.emit({ type: "session.opened", sessionId: newId("sess"), via: "rest", created: true });
    const warning = await next((l) => l.msg === "Kafka unreachable: buffering events and retrying");
    // Node's verdict on the chain the broker sent: its root is a CA nobody told this client to trust.
    expect(warning.err).toMatch(/self-signed certificate in certificate chain/);
    expect(warning.hint).toBe(
      "the brokers' TLS certificate is not trusted: KAFKA_SSL_CA_FILE must hold the CA that signed it",
    );
    expect(warning.level).toBe(40);
    expect(producer.buffered).toBe(1);
    expect(await metric(registry, "chatgrid_kafka_up")).toBe(0);
    expect(await metric(registry, "chatgrid_events_sent_total")).toBe(0);
    await producer.stop(500);
    expect(lines.filter((l) => l.msg.startsWith("Kafka unreachable"))).toHaveLength(1);
  });
});
