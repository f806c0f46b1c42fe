import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import type { ServerFrame } from "@chatgrid/protocol";
import { Redis, type RedisOptions } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoTokenStream } from "../../apps/ai/src/providers/demo";
import { binaryPath, ClusterRunner, ensureBinaries, freePort } from "../../infra/runner";
import { ChatClient } from "../support/chat-client";
import { TEST_ENV } from "../support/cluster";

/**
 * The apps, unchanged, on a Redis that speaks only TLS and requires a password, as ElastiCache with in-transit
 * encryption and an auth token does (`rediss://:<token>@<primary>:6379`): a local redis-server with `port 0` and a
 * `tls-port`, a certificate from a throwaway private CA, trusted by the nodes through NODE_EXTRA_CA_CERTS
 * (docs/redis.md "TLS and AUTH").
 */

interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** A private CA and a server certificate it signed for 127.0.0.1 and localhost, made with openssl in `dir`. */
function makeCertificates(dir: string): TlsFiles {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    const run = spawnSync(binaryPath("openssl"), args, { encoding: "utf8" });
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr || run.stdout || run.error}`);
  };
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...key,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt"),
    "-days",
    "2",
    "-subj",
    "/CN=chatgrid redis-tls test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  openssl("req", ...key, "-keyout", file("redis.key"), "-out", file("redis.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(
    file("redis.ext"),
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    file("redis.csr"),
    "-CA",
    file("ca.crt"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("redis.crt"),
    "-days",
    "2",
    "-extfile",
    file("redis.ext"),
  );
  return { ca: file("ca.crt"), cert: file("redis.crt"), key: file("redis.key") };
}

/** A value in redis.conf syntax (double-quoted, backslash escapes). */
const quote = (value: string) => `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

interface TlsRedis {
  port: number;
  stop(): Promise<void>;
}

/**
 * redis-server with TLS only (`port 0`) and `requirepass`, on a free port. The password is in a 0600 conf file, not
 * on the command line. Resolves once it accepts connections; a redis-server built without TLS is refused by name.
 */
async function startTlsRedis(dir: string, files: TlsFiles, password: string): Promise<TlsRedis> {
  let lastError: Error | undefined;
  for (let tries = 0; tries < 3; tries++) {
    const port = await freePort();
    const conf = join(dir, `redis-${port}.conf`);
    writeFileSync(
      conf,
      [
        "port 0",
        `tls-port ${port}`,
        "bind 127.0.0.1",
        "protected-mode yes",
        `tls-cert-file ${quote(files.cert)}`,
        `tls-key-file ${quote(files.key)}`,
        `tls-ca-cert-file ${quote(files.ca)}`,
        "tls-auth-clients no",
        `requirepass ${quote(password)}`,
        'save ""',
        "appendonly no",
        `dir ${quote(dir)}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const child = spawn(binaryPath("redis-server"), [conf], { stdio: ["ignore", "pipe", "pipe"] });
    const ready = await new Promise<string | undefined>((resolve) => {
      let output = "";
      const timer = setTimeout(() => finish(`not ready after 10 s:\n${output}`), 10_000);
      const onData = (data: Buffer) => {
        output += data.toString();
        if (output.includes("Ready to accept connections")) finish(undefined);
      };
      const onExit = (code: number | null) => finish(`exited (${code}) before ready:\n${output}`);
      function finish(problem: string | undefined) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stderr?.off("data", onData);
        child.off("exit", onExit);
        resolve(problem);
      }
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", onExit);
    });
    if (ready === undefined) {
      child.stdout?.resume();
      child.stderr?.resume();
      return { port, stop: () => killed(child) };
    }
    await killed(child);
    if (/tls-port|Bad directive|TLS/i.test(ready) && !/Address already in use/i.test(ready)) {
      throw new Error(
        `this redis-server has no TLS support (${ready.trim().split("\n").slice(-3).join(" ")}); Debian's is built with TLS: sudo apt-get install -y redis-server`,
      );
    }
    lastError = new Error(`redis-server (TLS on ${port}) ${ready}`);
  }
  throw lastError;
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  return exited;
}

/** One PING by a client of its own that does not reconnect: its reply, or why it got none (the first error seen). */
async function tryPing(url: string, options: RedisOptions): Promise<{ reply?: string; error?: string }> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableReadyCheck: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 3000,
    commandTimeout: 3000,
    ...options,
  });
  const errors: string[] = [];
  client.on("error", (error: Error) => errors.push(error.message));
  try {
    await client.connect().catch((error: Error) => errors.push(error.message));
    return { reply: await client.ping() };
  } catch (error) {
    return { error: [...errors, (error as Error).message].join(" | ") };
  } finally {
    client.disconnect();
  }
}

/** A command in RESP. */
const resp = (...args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/** A raw plaintext RESP `AUTH` + `PING` to the port: everything it answers before it closes the connection. */
function plaintextExchange(port: number, password: string): Promise<{ received: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: "127.0.0.1", port });
    let received = "";
    const finish = (closed: boolean) => {
      socket.destroy();
      resolve({ received, closed });
    };
    socket.setTimeout(5000, () => finish(false));
    socket.on("data", (data) => {
      received += data.toString("latin1");
    });
    socket.once("error", () => undefined);
    socket.once("close", () => finish(true));
    socket.once("connect", () => socket.write(resp("AUTH", password) + resp("PING")));
  });
}

/** A raw RESP `PING` over TLS (the CA trusted) without AUTH: Redis's first reply line. */
function tlsPingWithoutAuth(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: "127.0.0.1", port, ca });
    let received = "";
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`no reply within 5 s (got ${JSON.stringify(received)})`));
    });
    socket.once("error", reject);
    socket.once("secureConnect", () => socket.write(resp("PING")));
    socket.on("data", (data) => {
      received += data.toString();
      if (received.includes("\r\n")) {
        socket.destroy();
        resolve(received.slice(0, received.indexOf("\r\n")));
      }
    });
  });
}

const seqOf = (frame: ServerFrame) => ("seq" in frame ? frame.seq : undefined);

describe("Redis over TLS with AUTH (rediss://), 2 gateways + 1 AI node as processes", () => {
  const password = randomBytes(24).toString("base64url");
  const temps: string[] = [];
  let files: TlsFiles;
  let redis: TlsRedis | undefined;
  let runner: ClusterRunner | undefined;
  let url: string;

  beforeAll(async () => {
    // A missing binary fails here with the apt-get line (or is installed, as root on Debian).
    ensureBinaries(["redis-server", "openssl"]);
    const dir = mkdtempSync(join(tmpdir(), "chatgrid-redis-tls-"));
    temps.push(dir);
    files = makeCertificates(dir);
    redis = await startTlsRedis(dir, files, password);
    url = `rediss://127.0.0.1:${redis.port}`;

    const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-redis-tls-state-"));
    temps.push(stateDir);
    const { DEMO_TOKENS_PER_SECOND, DEMO_MAX_TOKENS, ...nodeEnv } = TEST_ENV;
    runner = await ClusterRunner.start({
      stateDir,
      nginx: false,
      restart: false,
      publicPortsMayBeFree: true,
      // ElastiCache's form: the auth token in the URL. The gateways use it as it is (REDIS_PASSWORD empty); the AI
      // node gets the URL without it and the password in REDIS_PASSWORD, the other supported form.
      redisUrl: `rediss://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}`,
      redisPassword: password,
      topology: {
        gatewayNodes: 2,
        aiNodes: 1,
        provider: {
          kind: "demo",
          demoTokensPerSecond: Number(DEMO_TOKENS_PER_SECOND),
          demoMaxTokens: Number(DEMO_MAX_TOKENS),
        },
        nodeEnv,
      },
      gatewayEnv: { NODE_EXTRA_CA_CERTS: files.ca, REDIS_PASSWORD: "" },
      aiEnv: { NODE_EXTRA_CA_CERTS: files.ca, REDIS_URL: url, REDIS_PASSWORD: password },
    });
  });

  afterAll(async () => {
    await runner?.stop();
    await redis?.stop();
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  });

  const trusted = () => ({ tls: { ca: readFileSync(files.ca) } });

  it("Redis listens with TLS only and refuses a plaintext client, a TLS client without the password, and one that does not trust the CA", async () => {
    // The control: TLS, the CA trusted, the password: PONG.
    expect(await tryPing(url, { ...trusted(), password })).toEqual({ reply: "PONG" });

    // A plain redis:// client (with the right password) gets nothing: the port speaks TLS only.
    const plain = await tryPing(`redis://127.0.0.1:${redis!.port}`, { password });
    expect(plain.reply).toBeUndefined();
    expect(plain.error).toBeDefined();
    const raw = await plaintextExchange(redis!.port, password);
    expect(raw.closed).toBe(true);
    expect(raw.received).not.toMatch(/\+OK|\+PONG|NOAUTH|WRONGPASS/);

    // TLS without the password: NOAUTH for every command (ioredis's first is HELLO; a bare PING gets it too).
    const anonymous = await tryPing(url, trusted());
    expect(anonymous.reply).toBeUndefined();
    expect(anonymous.error).toMatch(/^NOAUTH/);
    expect(await tlsPingWithoutAuth(redis!.port, readFileSync(files.ca))).toMatch(/^-NOAUTH/);
    // And a wrong one is refused too.
    const wrong = await tryPing(url, { ...trusted(), password: `${password}x` });
    expect(wrong.reply).toBeUndefined();
    expect(wrong.error).toMatch(/WRONGPASS|NOAUTH/);

    // TLS without trusting the private CA: the certificate is refused (what NODE_EXTRA_CA_CERTS is for).
    const untrusting = await tryPing(url, { tls: {}, password });
    expect(untrusting.reply).toBeUndefined();
    expect(untrusting.error).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);

    // Only the TLS listener exists.
    const admin = new Redis(url, { ...trusted(), password, lazyConnect: true });
    try {
      await admin.connect();
      expect(await admin.config("GET", "port")).toEqual(["port", "0"]);
      expect(await admin.config("GET", "tls-port")).toEqual(["tls-port", String(redis!.port)]);
    } finally {
      admin.disconnect();
    }
  });

  it("every node is connected to it (both URL forms), ready, and keeps the password out of cluster.json", async () => {
    const admin = new Redis(url, { ...trusted(), password, lazyConnect: true });
    try {
      await admin.connect();
      const names = ((await admin.client("LIST")) as string)
        .split("\n")
        .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1])
        .filter((name): name is string => Boolean(name));
      expect(names).toEqual(
        expect.arrayContaining([
          "gateway-1:cmd",
          "gateway-1:sub",
          "gateway-2:cmd",
          "gateway-2:sub",
          "ai-1:cmd",
          "ai-1:sub",
        ]),
      );
    } finally {
      admin.disconnect();
    }
    const ai = runner!.topology.aiNodes[0]!;
    expect(await (await fetch(`${ai.url}/health`)).json()).toMatchObject({ status: "ok", redis: "up" });
    for (const gateway of runner!.topology.gateways) {
      const health = await fetch(`http://${gateway.host}:${gateway.metricsPort}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: "ok", redis: "up", aiNodes: [{ healthy: true }] });
    }
    const clusterFile = readFileSync(join(runner!.options.stateDir, "cluster.json"), "utf8");
    expect(clusterFile).not.toContain(password);
    expect(clusterFile).not.toContain(encodeURIComponent(password));
  });

  it("a chat streams to done through gateway-1 (round trip), the text equal to history", async () => {
    const client = new ChatClient(runner!.gatewayUrl(0));
    await client.connect();
    expect(client.node).toBe("gateway-1");
    const prompt = "[demo:tokens=20] over TLS";
    const accepted = await client.chat(prompt);
    const view = await client.done(accepted.streamId);
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("stop");
    expect(view.start?.aiNode).toBe("ai-1");
    // All 20 tokens, in order (in fewer chunks than tokens when the node coalesced tokens that came together).
    expect(view.text).toBe([...demoTokenStream([{ role: "user", content: prompt }], 20)].join(""));
    const history = await client.history(accepted.conversationId);
    expect(history.messages[1]).toMatchObject({ status: "complete", content: view.text });
    client.close();
  });

  it("a client cut mid-stream resumes on gateway-2, and another resumes there after done: no gap, no repeat", async () => {
    const client = new ChatClient(runner!.gatewayUrl(0));
    await client.connect();
    expect(client.node).toBe("gateway-1");
    // 300 tokens at 50/s: about 6 s, so the stream is still running when the client comes back.
    const accepted = await client.chat("[demo:tokens=300] a long answer over TLS");
    await client.next((f) => f.type === "chunk" && f.streamId === accepted.streamId && f.seq >= 5);
    client.close();
    const cutAt = client.view(accepted.streamId).lastSeq;
    expect(client.view(accepted.streamId).done).toBeUndefined();

    client.baseUrl = runner!.gatewayUrl(1);
    const framesBefore = client.frames.length;
    const welcome = await client.reconnect();
    expect(welcome.node).toBe("gateway-2");
    const view = await client.done(accepted.streamId, 30_000);
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("stop");
    const resumed = client.frames
      .slice(framesBefore)
      .filter((f) => "streamId" in f && f.streamId === accepted.streamId)
      .map(seqOf);
    // Exactly the seqs after the cut, in order, up to done: nothing skipped, nothing sent twice.
    expect(resumed[0]).toBe(cutAt + 1);
    expect(resumed).toEqual(Array.from({ length: view.lastSeq - cutAt }, (_, i) => cutAt + 1 + i));
    const history = await client.history(accepted.conversationId);
    expect(history.messages[1]).toMatchObject({ status: "complete", content: view.text });

    // After done, another socket of the session on gateway-2 resumes from seq 10: seq 11 to done, nothing else.
    const afterSeq = 10;
    const late = new ChatClient(runner!.gatewayUrl(1));
    late.token = client.token;
    // The late client starts where the first one was at seq 10 (a reset before that, after a retried dispatch on a
    // loaded machine, cleared the text there too).
    late.seedFrom(client, accepted.streamId, afterSeq);
    await late.connect({ resume: [{ streamId: accepted.streamId, afterSeq }] });
    expect(late.node).toBe("gateway-2");
    const replay = await late.done(accepted.streamId);
    expect(replay.violations).toEqual([]);
    expect(replay.text).toBe(view.text);
    expect(late.frames.filter((f) => "streamId" in f).map(seqOf)).toEqual(
      Array.from({ length: view.lastSeq - afterSeq }, (_, i) => afterSeq + 1 + i),
    );
    late.close();
    client.close();
  });
});
