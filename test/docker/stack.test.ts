// The Docker stack on a real engine: one `pulumi up` of this checkout's program (stack "local" in a temp project
// with a file backend of its own, the provisioning tool's CLI and stand-in images, free host ports), every test
// against that one stack through its published ports, `pulumi destroy` at the end. The tests run in order.
import { get as httpGet } from "node:http";
import { LIMITS } from "@chatgrid/protocol";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { freePorts } from "../../infra/runner/ports";
import { ChatClient } from "../support/chat-client";
import { type ClientStream, expectExactAnswers, waitForProgress } from "../support/streams";
import { waitFor } from "../support/wait";
import {
  containerNames,
  crash,
  createRealStack,
  docker,
  fetchInside,
  inspect,
  OWNER_ENV,
  provisioned,
  type RealStack,
  removeLeftovers,
  setUpOnce,
  stackLeftovers,
  waitRestartedHealthy,
} from "./real-stack";

const log = (line: string) => console.log(`[docker] ${line}`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** The containers of gatewayNodes N and aiNodes M. */
function expectedContainers(gateways: number, aiNodes: number): string[] {
  return [
    "chatgrid-redis",
    "chatgrid-kafka",
    "chatgrid-nginx",
    "chatgrid-web",
    ...Array.from({ length: gateways }, (_, i) => `chatgrid-gateway-${i + 1}`),
    ...Array.from({ length: aiNodes }, (_, i) => `chatgrid-ai-${i + 1}`),
  ].sort();
}

/** Follows a stream to `done` across any number of lost sockets, reconnecting with resume points like a client. */
async function followToEnd(client: ChatClient, streamId: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const view = client.view(streamId);
  let backoff = 250;
  let resumes = 0;
  while (!view.done) {
    if (Date.now() > deadline) throw new Error(`stream ${streamId} did not end within ${timeoutMs} ms`);
    if (!client.ws || client.ws.readyState !== WebSocket.OPEN) {
      try {
        await client.connect({ resume: client.resumePoints() });
        resumes++;
        backoff = 250;
      } catch {
        client.close();
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 2_000);
      }
      continue;
    }
    const ended = client
      .next((f) => f.type === "done" && f.streamId === streamId, Math.max(1, deadline - Date.now()))
      .catch(() => undefined);
    await Promise.race([ended, client.closed()]);
  }
  return resumes;
}

/**
 * One GET of the entry's /healthz (nginx's own answer) on a connection of its own: undefined for a 200 within a
 * second, else why not. A new connection per probe, because a reload closes the old workers' idle keep-alive
 * connections, and a request sent on one just as it closes fails without the entry ever having stopped answering
 * (a browser retries such a request on a new connection; `fetch` does not): what a probe asks is whether the entry
 * takes and answers a request.
 */
function healthz(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpGet(`${url}/healthz`, { agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200 ? undefined : `status ${res.statusCode}`));
      res.on("error", (error) => resolve(`response: ${error.message}`));
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 1 s")));
    req.on("error", (error) => resolve(error.message));
  });
}

/** /healthz on the entry every 20 ms, until stopped: the longest run of failed probes is the entry's gap. */
function probeEntry(url: string) {
  let running = true;
  let probes = 0;
  let failingSince: number | undefined;
  let longest = 0;
  const started = Date.now();
  // What each failed probe saw and when (ms from the start), so a failure says whether nginx refused, reset or hung.
  const failed: string[] = [];
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      probes++;
      const problem = await healthz(url);
      if (problem !== undefined) {
        failed.push(`+${at - started} ms: ${problem}`);
        failingSince ??= at;
      } else if (failingSince !== undefined) {
        longest = Math.max(longest, Date.now() - failingSince);
        failingSince = undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 20 - (Date.now() - at))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      if (failingSince !== undefined) longest = Math.max(longest, Date.now() - failingSince);
      return {
        probes,
        failures: failed.length,
        failed,
        longestGapMs: longest,
        stillFailing: failingSince !== undefined,
      };
    },
  };
}

/** The pids of a container's nginx worker processes (`docker top`, from the host): a reload replaces them all. */
async function nginxWorkers(container: string): Promise<string[]> {
  const top = await docker("top", container, "-o", "pid,args");
  return top
    .split("\n")
    .filter((line) => line.includes("nginx: worker process"))
    .map((line) => line.trim().split(/\s+/)[0]!);
}

/** Starts a streamed chat on its own client (through `url`) and waits until it is mid-answer. */
async function startStream(url: string, tokens: number, label: string): Promise<ClientStream> {
  const client = new ChatClient(url);
  await client.connect();
  const accepted = await client.chat(`[demo:tokens=${tokens}] ${label}`);
  const stream = { client, streamId: accepted.streamId, conversationId: accepted.conversationId };
  await waitForProgress([stream], 3);
  return stream;
}

describe("the Docker stack on a real engine (pulumi up, chaos, scale, destroy)", () => {
  let real: RealStack | undefined;
  let destroyed = false;
  let entry = "";
  let web = "";
  const clients: ChatClient[] = [];
  const track = (client: ChatClient) => {
    clients.push(client);
    return client;
  };

  // A setup failure (no engine, no CLI, a failed `up`) fails every test with its message: none is ever skipped.
  const ready = setUpOnce(setUp);

  async function setUp() {
    // First what the machine lacks (with the command to run), before anything asks the engine.
    provisioned();
    await removeLeftovers(log);
    const [httpPort, webPort, metricsPort] = (await freePorts(8)).filter((p) => p !== 8080);
    entry = `http://127.0.0.1:${httpPort}`;
    web = `http://127.0.0.1:${webPort}`;
    real = await createRealStack({
      gatewayNodes: "3",
      aiNodes: "3",
      httpPort: String(httpPort),
      webPort: String(webPort),
      metricsPort: String(metricsPort),
      publishAddress: "127.0.0.1",
      debugPorts: "false",
      provider: "demo",
      demoTokensPerSecond: "30",
      kafka: "true",
      nodeEnv: JSON.stringify({ CHATGRID_STACK_OWNER: OWNER_ENV.split("=")[1] }),
    });
    const started = Date.now();
    const result = await real.stack.up({ onOutput: () => undefined });
    log(`pulumi up (3 + 3): ${seconds(started)}, ${JSON.stringify(result.summary.resourceChanges)}`);
    expect(result.summary.result).toBe("succeeded");
  }

  afterAll(async () => {
    for (const client of clients) client.close();
    if (real && !destroyed) {
      const started = Date.now();
      await real.stack.destroy({ onOutput: () => undefined }).then(
        () => log(`pulumi destroy (afterAll): ${seconds(started)}`),
        (error) => log(`pulumi destroy failed: ${String(error)}`),
      );
    }
    real?.dispose();
  }, 300_000);

  it("every container of 3 + 3 is running and healthy, on the published ports only", async () => {
    ready();
    const names = await containerNames();
    expect(names).toEqual(expectedContainers(3, 3));
    for (const name of names) {
      const state = await inspect(name);
      expect(state, name).toMatchObject({ status: "running", health: "healthy", restartCount: 0 });
    }
    // Only nginx and web publish anything (debug ports off), on 127.0.0.1.
    const published = await docker("ps", "--filter", "label=chatgrid.role", "--format", "{{.Names}} {{.Ports}}");
    for (const line of published.split("\n")) {
      const [name, ...ports] = line.split(" ");
      if (name === "chatgrid-nginx" || name === "chatgrid-web")
        expect(ports.join(" "), name).toMatch(/127\.0\.0\.1:\d+->/);
      else expect(ports.join(" "), name).not.toMatch(/->/);
    }
    const outputs = await real!.stack.outputs();
    expect(outputs.apiUrl?.value).toBe(entry.replace("127.0.0.1", "localhost"));
    expect(outputs.redisPassword?.secret).toBe(true);
  });

  it("pulumi preview right after up shows no changes", async () => {
    ready();
    const preview = await real!.stack.preview({ expectNoChanges: true, onOutput: () => undefined });
    expect(Object.keys(preview.changeSummary)).toEqual(["same"]);
  });

  it("a chat over REST and WebSocket through nginx (entry and web port) streams to done", async () => {
    ready();
    for (const url of [entry, web]) {
      const client = track(new ChatClient(url));
      await client.createSession();
      const welcome = await client.connect();
      expect(welcome.node).toMatch(/^gateway-[123]$/);
      const accepted = await client.chat("[demo:tokens=40] hello through nginx");
      await expectExactAnswers([{ client, ...accepted }]);
      expect(client.view(accepted.streamId).text.split(" ").length).toBeGreaterThanOrEqual(40);
    }
    const page = await fetch(web);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
  });

  it("an event reaches the Kafka topic (read with kafkajs inside the network, from a gateway container)", async () => {
    ready();
    const client = track(new ChatClient(entry));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=10] to the event log");
    await expectExactAnswers([{ client, ...accepted }]);
    // Debug ports are off and nothing of the stack's network is dialled from the host: a consumer runs in a gateway
    // container (its image has kafkajs), reads the topic from the start and prints the events of this stream.
    const consume = `
      const { Kafka, logLevel } = require("kafkajs");
      const streamId = ${JSON.stringify(accepted.streamId)};
      const kafka = new Kafka({ clientId: "chatgrid-docker-test", brokers: ["kafka:9092"], logLevel: logLevel.NOTHING });
      const consumer = kafka.consumer({ groupId: "docker-test-" + streamId });
      const seen = [];
      // No disconnect: it would wait for the eachMessage that calls this, and never return.
      const finish = (code) => { console.log(JSON.stringify(seen)); process.exit(code); };
      setTimeout(() => finish(1), 60000);
      (async () => {
        await consumer.connect();
        await consumer.subscribe({ topic: "chatgrid.events", fromBeginning: true });
        await consumer.run({ eachMessage: async ({ message }) => {
          const event = JSON.parse(message.value.toString());
          if (event.streamId !== streamId) return;
          seen.push(event.type);
          if (event.type === "stream.completed") finish(0);
        } });
      })().catch((error) => { console.error(String(error)); finish(1); });`;
    const printed = await docker("exec", "chatgrid-gateway-1", "node", "-e", consume);
    const ofStream = JSON.parse(printed.trim().split("\n").at(-1) ?? "[]") as string[];
    expect(ofStream).toEqual(expect.arrayContaining(["chat.requested", "stream.started", "stream.completed"]));
  });

  it("SIGKILL of the gateway holding the socket mid-answer: resumed through nginx without gap or repeat, the container restarts", async () => {
    ready();
    const stream = await startStream(entry, 120, "gateway crash");
    track(stream.client);
    const holder = `chatgrid-${stream.client.node}`;
    const before = await crash(holder);
    await stream.client.closed();
    const resumedFrom = stream.client.view(stream.streamId).lastSeq;
    await stream.client.reconnect();
    await expectExactAnswers([stream]);
    const view = stream.client.view(stream.streamId);
    expect(resumedFrom).toBeLessThan(view.lastSeq);
    expect(view.text.split(" ").length).toBeGreaterThanOrEqual(120);
    const after = await waitRestartedHealthy(before);
    expect(after.restartCount).toBe(before.restartCount + 1);
    expect(after.pid).not.toBe(before.pid);
  });

  it("SIGKILL of the AI node running a stream: the stream still ends with done, the container restarts", async () => {
    ready();
    const stream = await startStream(entry, 150, "ai node crash");
    track(stream.client);
    const aiNode = stream.client.view(stream.streamId).start?.aiNode;
    expect(aiNode).toMatch(/^ai-[123]$/);
    const before = await crash(`chatgrid-${aiNode}`);
    await expectExactAnswers([stream], "stop", LIMITS.streamFailureBoundMs + 30_000);
    const view = stream.client.view(stream.streamId);
    expect(view.done?.aiNode).toMatch(/^ai-[123]$/);
    const after = await waitRestartedHealthy(before);
    expect(after.restartCount).toBe(before.restartCount + 1);
  });

  it("Redis SIGKILLed: it restarts and the conversation's history is still there (AOF on the volume)", async () => {
    ready();
    const client = track(new ChatClient(entry));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=30] remember me");
    await expectExactAnswers([{ client, ...accepted }]);
    const before = await client.history(accepted.conversationId);
    expect(before.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    const mounts = JSON.parse(await docker("inspect", "-f", "{{json .Mounts}}", "chatgrid-redis")) as {
      Type: string;
      Name?: string;
      Destination: string;
    }[];
    expect(mounts).toContainEqual(
      expect.objectContaining({ Type: "volume", Name: "chatgrid-redis-data", Destination: "/data" }),
    );
    // appendfsync everysec: wait until the answer is in the AOF on the volume, then crash Redis (no shutdown save).
    await waitFor(
      "the answer in Redis's append-only file",
      async () =>
        (await docker("exec", "chatgrid-redis", "sh", "-c", "cat /data/appendonlydir/*.aof")).includes(
          accepted.streamId,
        ),
      10_000,
      100,
    );
    const redis = await crash("chatgrid-redis");
    await waitRestartedHealthy(redis, 60_000);
    await waitFor(
      "the gateways and AI nodes back on Redis",
      async () => {
        const health = await fetch(`${entry}/api/health`).then((r) => r.json() as Promise<{ redis: string }>);
        return health.redis === "up";
      },
      60_000,
      250,
    );
    const after = await client.history(accepted.conversationId);
    expect(after.messages).toEqual(before.messages);
    // And the stack carries on: a new answer in the same conversation.
    const next = await client.chat("[demo:tokens=10] still here?", { conversationId: accepted.conversationId });
    if (!client.ws || client.ws.readyState !== WebSocket.OPEN) await client.reconnect();
    await followToEnd(client, next.streamId, 60_000);
    await expectExactAnswers([{ client, ...next }]);
  });

  it("with a gateway stopped, a change of nginx's configuration is reloaded in place, and both ports serve", async () => {
    ready();
    // `docker stop` is a manual stop: the restart policy leaves gateway-2 down. Its name then resolves nowhere,
    // which used to keep a new nginx from starting (host not found in upstream); the upstream is by address now.
    await docker("stop", "chatgrid-gateway-2");
    expect((await inspect("chatgrid-gateway-2")).status).toBe("exited");
    // apiBurst is nginx's alone: only the two nginx files change (nginx reloads them), no container is replaced.
    const before = await Promise.all(["chatgrid-nginx", "chatgrid-web"].map(inspect));
    await real!.configure({ apiBurst: "41" });
    const result = await real!.stack.up({ onOutput: () => undefined });
    expect(result.summary.result).toBe("succeeded");
    expect(result.summary.resourceChanges).toMatchObject({ update: 2 });
    expect(result.summary.resourceChanges?.replace ?? 0).toBe(0);
    expect((await Promise.all(["chatgrid-nginx", "chatgrid-web"].map(inspect))).map((c) => c.id)).toEqual(
      before.map((c) => c.id),
    );
    expect(await docker("exec", "chatgrid-nginx", "cat", "/etc/chatgrid/entry.conf")).toContain("burst=41");
    for (const name of ["chatgrid-nginx", "chatgrid-web"]) {
      expect(await inspect(name), name).toMatchObject({ status: "running", health: "healthy" });
    }
    for (const url of [entry, web]) {
      const client = track(new ChatClient(url));
      await client.connect();
      expect(client.node).not.toBe("gateway-2");
      const accepted = await client.chat("[demo:tokens=10] one gateway down");
      await expectExactAnswers([{ client, ...accepted }]);
    }
    await docker("start", "chatgrid-gateway-2");
    await waitFor(
      "gateway-2 healthy again",
      async () => (await inspect("chatgrid-gateway-2")).health === "healthy",
      90_000,
      250,
    );
  });

  it("scale gateways 3 → 4 and AI nodes 3 → 2 by configuration: upstream, AI lists and in-flight streams follow; no socket drops, the entry never stops answering", async () => {
    ready();
    // Every container back and healthy before the change (the crashes above restarted some).
    await waitFor(
      "all containers healthy",
      async () => (await Promise.all((await containerNames()).map(inspect))).every((s) => s.health === "healthy"),
      90_000,
      250,
    );
    const streams: ClientStream[] = [];
    for (let i = 0; i < 6; i++) streams.push(await startStream(entry, 900, `in flight during the scale ${i}`));
    for (const s of streams) track(s.client);
    const onAi3 = streams.filter((s) => s.client.view(s.streamId).start?.aiNode === "ai-3").length;
    log(`streams in flight: ${streams.length}, on ai-3 (removed): ${onAi3}`);

    const staying = [
      "chatgrid-nginx",
      "chatgrid-web",
      "chatgrid-gateway-1",
      "chatgrid-gateway-2",
      "chatgrid-gateway-3",
    ];
    const stayingBefore = await Promise.all(staying.map(inspect));
    const workersBefore = await nginxWorkers("chatgrid-nginx");
    const probe = probeEntry(entry);
    const followers = streams.map((s) =>
      followToEnd(s.client, s.streamId, 180_000).then(
        (resumes) => ({ resumes }),
        (error: unknown) => ({ error: String(error), resumes: -1 }),
      ),
    );
    await real!.configure({ gatewayNodes: "4", aiNodes: "2" });
    const started = Date.now();
    const result = await real!.stack.up({ onOutput: () => undefined });
    log(`pulumi up (4 + 2): ${seconds(started)}, ${JSON.stringify(result.summary.resourceChanges)}`);
    const followed = await Promise.all(followers);
    const gap = await probe.stop();
    log(
      `entry /healthz during the scale: ${gap.probes} probes every 20 ms, ${gap.failures} failed, longest gap ${gap.longestGapMs} ms`,
    );

    log(`resumes per stream: ${followed.map((f) => f.resumes).join(", ")}`);
    expect(followed.filter((f) => "error" in f)).toEqual([]);
    await expectExactAnswers(streams, "stop", 60_000);
    // One gateway created, ai-3 deleted, nginx's two files rewritten; nothing replaced: the gateways follow the AI
    // registry (their environment does not name AI nodes), and nginx reloads its file in place.
    expect(result.summary.resourceChanges).toMatchObject({ create: 1, update: 2, delete: 1 });
    expect(result.summary.resourceChanges?.replace ?? 0).toBe(0);
    expect((await Promise.all(staying.map(inspect))).map((c) => c.id)).toEqual(stayingBefore.map((c) => c.id));
    // So no client lost its socket: every stream ended on the connection it started on (those on ai-3 were taken
    // over by ai-1 or ai-2 behind the same socket), and the entry never stopped answering.
    expect(followed.map((f) => f.resumes)).toEqual(streams.map(() => 0));
    expect(gap.stillFailing).toBe(false);
    expect(gap.failed).toEqual([]);
    await waitFor(
      // A reload starts new workers (the old ones finish their connections, then leave).
      "nginx to reload (new workers)",
      async () => (await nginxWorkers("chatgrid-nginx")).some((pid) => !workersBefore.includes(pid)),
      30_000,
      250,
    );

    expect(await containerNames()).toEqual(expectedContainers(4, 2));
    for (const name of await containerNames()) expect((await inspect(name)).health, name).toBe("healthy");
    // Both nginx containers' upstream lists the four gateways by their fixed addresses.
    for (const [container, file] of [
      ["chatgrid-nginx", "entry.conf"],
      ["chatgrid-web", "web.conf"],
    ] as const) {
      const conf = await docker("exec", container, "cat", `/etc/chatgrid/${file}`);
      const upstream = /upstream chatgrid_gateways \{([^}]*)\}/.exec(conf)?.[1] ?? "";
      const servers = [...upstream.matchAll(/server\s+([\d.]+):8081/g)].map((m) => m[1]);
      expect(servers, container).toEqual(["172.20.1.1", "172.20.1.2", "172.20.1.3", "172.20.1.4"]);
    }
    // Every gateway's AI list (its internal health) becomes the two remaining nodes, both healthy: ai-3 left the
    // registry when it was stopped, and each gateway reads the registry every AI_PROBE_INTERVAL_MS (2 s).
    const aiList = async (i: number) => {
      const health = JSON.parse(await fetchInside(`chatgrid-gateway-${i}`, "http://127.0.0.1:9081/health")) as {
        aiNodes: { name: string; healthy: boolean }[];
      };
      return JSON.stringify(health.aiNodes.map((n) => [n.name, n.healthy]).sort());
    };
    const twoLeft = JSON.stringify([
      ["ai-1", true],
      ["ai-2", true],
    ]);
    for (let i = 1; i <= 4; i++) {
      await waitFor(
        `gateway-${i}'s AI list to be ai-1 and ai-2`,
        async () => (await aiList(i)) === twoLeft,
        10_000,
        250,
      );
    }
    // A new chat lands on the new topology.
    const client = track(new ChatClient(entry));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=10] after the scale");
    await expectExactAnswers([{ client, ...accepted }]);
    expect(client.view(accepted.streamId).done?.aiNode).toMatch(/^ai-[12]$/);
  });

  it("scale gateways 4 → 3 with streams in flight: the entry never stops answering; streams on gateway-4 resume on another", async () => {
    ready();
    const streams: ClientStream[] = [];
    for (let i = 0; i < 4; i++) streams.push(await startStream(entry, 600, `in flight during the scale-down ${i}`));
    for (const s of streams) track(s.client);
    // ip_hash pins one client address to one gateway: all these streams share theirs, gateway-4 or not.
    const onGateway4 = streams.map((s) => s.client.node === "gateway-4");
    log(`streams in flight: ${streams.length}, on gateway-4 (removed): ${onGateway4.filter(Boolean).length}`);

    const staying = [
      "chatgrid-nginx",
      "chatgrid-web",
      "chatgrid-gateway-1",
      "chatgrid-gateway-2",
      "chatgrid-gateway-3",
    ];
    const stayingBefore = await Promise.all(staying.map(inspect));
    const probe = probeEntry(entry);
    const followers = streams.map((s) => followToEnd(s.client, s.streamId, 180_000));
    await real!.configure({ gatewayNodes: "3" });
    const started = Date.now();
    const result = await real!.stack.up({ onOutput: () => undefined });
    log(`pulumi up (3 + 2): ${seconds(started)}, ${JSON.stringify(result.summary.resourceChanges)}`);
    const resumes = await Promise.all(followers);
    const gap = await probe.stop();
    log(
      `entry /healthz during the scale-down: ${gap.probes} probes every 20 ms, ${gap.failures} failed, longest gap ${gap.longestGapMs} ms`,
    );

    // The files are rewritten first, gateway-4 deleted last (Pulumi deletes after every other step).
    expect(result.summary.resourceChanges).toMatchObject({ update: 2, delete: 1 });
    expect(result.summary.resourceChanges?.replace ?? 0).toBe(0);
    expect((await Promise.all(staying.map(inspect))).map((c) => c.id)).toEqual(stayingBefore.map((c) => c.id));
    expect(gap.stillFailing).toBe(false);
    expect(gap.failed).toEqual([]);
    // A stream on gateway-4 lost its socket (SIGTERM: close 1012) and resumed through nginx; the others never did.
    expect(resumes.map((r) => r > 0)).toEqual(onGateway4);
    await expectExactAnswers(streams, "stop", 60_000);
    expect(await containerNames()).toEqual(expectedContainers(3, 2));
    const conf = await docker("exec", "chatgrid-nginx", "cat", "/etc/chatgrid/entry.conf");
    const upstream = /upstream chatgrid_gateways \{([^}]*)\}/.exec(conf)?.[1] ?? "";
    expect([...upstream.matchAll(/server\s+([\d.]+):8081/g)].map((m) => m[1])).toEqual([
      "172.20.1.1",
      "172.20.1.2",
      "172.20.1.3",
    ]);
  });

  it("pulumi preview after the scale shows no changes", async () => {
    ready();
    const preview = await real!.stack.preview({ expectNoChanges: true, onOutput: () => undefined });
    expect(Object.keys(preview.changeSummary)).toEqual(["same"]);
  });

  it("pulumi destroy leaves no container, network or volume of the stack", async () => {
    ready();
    for (const client of clients) client.close();
    const started = Date.now();
    const result = await real!.stack.destroy({ onOutput: () => undefined });
    destroyed = true;
    log(`pulumi destroy: ${seconds(started)}, ${JSON.stringify(result.summary.resourceChanges)}`);
    expect(result.summary.result).toBe("succeeded");
    expect(await stackLeftovers()).toEqual({ containers: [], networks: [], volumes: [] });
    expect((await real!.stack.outputs()).apiUrl).toBeUndefined();
  });
});
