import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import type { Redis } from "ioredis";
import { connectRedis, createRedis } from "./redis";

/**
 * Test helper: a throw-away redis-server of the test's own, on a free loopback port, without persistence.
 * Only tests import this file.
 */
export interface TestRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves when redis-server says it accepts connections; rejects when it exits first (e.g. the port was taken). */
function whenReady(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(
      () => finish(new Error(`redis-server not ready after ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (data: Buffer) => {
      output += data.toString();
      if (output.includes("Ready to accept connections")) finish();
    };
    const onExit = (code: number | null) => finish(new Error(`redis-server exited (${code}) before ready:\n${output}`));
    function finish(error?: Error) {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
      if (error) reject(error);
      else resolve();
    }
    child.stdout?.on("data", onData);
    child.once("exit", onExit);
  });
}

export async function startTestRedis(): Promise<TestRedis> {
  const probe = spawnSync("redis-server", ["--version"]);
  if (probe.error) {
    throw new Error("redis-server is not installed: run `apt-get install -y redis-server`");
  }
  let lastError: unknown;
  for (let tries = 0; tries < 3; tries++) {
    const port = await freePort();
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      await whenReady(child, 10_000);
    } catch (error) {
      lastError = error;
      child.kill("SIGKILL");
      continue;
    }
    // Keep draining its output so a full pipe never blocks the server.
    child.stdout?.resume();
    child.stderr?.resume();
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      },
    };
  }
  throw lastError;
}

/**
 * A test file's own Redis and one connection to it, started before its tests and stopped after (vitest hooks);
 * `redis()` is the connection while the file's tests run.
 */
export function useTestRedis(name: string, hooks: { beforeAll: Hook; afterAll: Hook }): () => Redis {
  let server: TestRedis | undefined;
  let client: Redis | undefined;
  hooks.beforeAll(async () => {
    server = await startTestRedis();
    client = createRedis(server.url, name);
    client.on("error", () => undefined);
    await connectRedis(client, 10_000);
  });
  hooks.afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });
  return () => {
    if (!client) throw new Error(`${name}: the test Redis is not started (use it inside a test)`);
    return client;
  };
}

type Hook = (fn: () => Promise<void>) => void;
