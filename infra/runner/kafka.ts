import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { binaryPath, ensureBinaries, hasBinary } from "./binaries";

/** The broker version every target runs (the Docker stack pins the same one). */
export const KAFKA_VERSION = "3.9.1";

/** Where Maven's copy-dependencies puts the broker's jars (ignored by git). */
export const kafkaLibDir = (root: string): string => join(root, ".cache", "kafka", "libs");

/** True when the jars are there or can be fetched (Java and Maven present). */
export function kafkaAvailable(root: string): { ok: true } | { ok: false; why: string } {
  if (!hasBinary("java")) return { ok: false, why: "Java is not installed (apt-get install -y default-jre-headless)" };
  if (existsSync(join(kafkaLibDir(root), `kafka_2.13-${KAFKA_VERSION}.jar`))) return { ok: true };
  if (!hasBinary("mvn"))
    return { ok: false, why: "Maven is not installed to fetch the Kafka jars (apt-get install -y maven)" };
  return { ok: true };
}

/** Fetches Apache Kafka and a logger binding from Maven Central into .cache/kafka/libs, once. */
export function ensureKafkaJars(root: string, log: (line: string) => void): string {
  const libs = kafkaLibDir(root);
  if (existsSync(join(libs, `kafka_2.13-${KAFKA_VERSION}.jar`))) return libs;
  ensureBinaries(["mvn"], log);
  log(`fetching Apache Kafka ${KAFKA_VERSION} jars with Maven (once)…`);
  const result = spawnSync(
    binaryPath("mvn"),
    ["-q", "-B", "-f", join(root, "infra", "kafka", "pom.xml"), "dependency:copy-dependencies"],
    {
      stdio: "inherit",
    },
  );
  if (result.status !== 0 || !existsSync(join(libs, `kafka_2.13-${KAFKA_VERSION}.jar`))) {
    throw new Error("could not fetch the Kafka jars with Maven (see above); pass --no-kafka to run without events");
  }
  return libs;
}

/** An extra TLS listener, for tests of TLS clients (docs/events.md "TLS and authentication"). */
export interface KafkaSslListener {
  port: number;
  /** A PEM file with the broker's unencrypted PKCS#8 private key and its certificate chain (`ssl.keystore.type=PEM`). */
  keystorePemFile: string;
}

export interface KafkaBrokerOptions {
  ssl?: KafkaSslListener;
}

export interface KafkaBrokerFiles {
  command: string;
  args: string[];
  configFile: string;
}

/**
 * Writes a KRaft combined-mode (broker + controller) configuration on loopback, formats the log dir once, and
 * returns the command that starts the broker. Replication factors are 1: it is one broker. `options.ssl` adds a TLS
 * listener beside the PLAINTEXT one (which the readiness probe and inter-broker traffic keep using).
 */
export function prepareKafkaBroker(
  root: string,
  dir: string,
  port: number,
  controllerPort: number,
  options: KafkaBrokerOptions = {},
): KafkaBrokerFiles {
  const libs = kafkaLibDir(root);
  const { ssl } = options;
  const sslListener = ssl ? `,SSL://127.0.0.1:${ssl.port}` : "";
  const dataDir = join(dir, "data");
  // A fresh broker per run: formatted anew, so no state of an earlier run (or another cluster id) gets in the way.
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const configFile = join(dir, "server.properties");
  writeFileSync(
    configFile,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port}${sslListener},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}${sslListener}`,
      "controller.listener.names=CONTROLLER",
      "inter.broker.listener.name=PLAINTEXT",
      `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${ssl ? ",SSL:SSL" : ""}`,
      // Server-side TLS only (no client certificates), like MSK's TLS listeners.
      ...(ssl ? ["ssl.keystore.type=PEM", `ssl.keystore.location=${ssl.keystorePemFile}`, "ssl.client.auth=none"] : []),
      `log.dirs=${dataDir}`,
      "num.partitions=3",
      "default.replication.factor=1",
      "offsets.topic.replication.factor=1",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "group.initial.rebalance.delay.ms=0",
      "auto.create.topics.enable=false",
      "",
    ].join("\n"),
  );
  const java = binaryPath("java");
  const classpath = `${libs}/*`;
  const clusterId = kafkaClusterId();
  const format = spawnSync(
    java,
    ["-cp", classpath, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", configFile],
    { encoding: "utf8" },
  );
  if (format.status !== 0) throw new Error(`formatting the Kafka log dir failed: ${format.stderr || format.stdout}`);
  return {
    command: java,
    args: ["-Xmx512m", "-Xms128m", "-Djava.net.preferIPv4Stack=true", "-cp", classpath, "kafka.Kafka", configFile],
    configFile,
  };
}

/**
 * A random cluster id as Kafka's own `Uuid.randomUuid` makes them: 16 random bytes in base64url, never one that
 * starts with "-". The storage tool's argument parser reads such an id as an option, and the format fails
 * ("argument --cluster-id/-t: expected one argument") for one broker start in 64.
 */
export function kafkaClusterId(random: () => Buffer = () => randomBytes(16)): string {
  for (;;) {
    const id = random().toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/** Ready when the broker answers an admin call (metadata), not merely when its port is open. */
export async function kafkaReady(brokers: string): Promise<boolean> {
  const kafka = new Kafka({
    clientId: "chatgrid-probe",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
