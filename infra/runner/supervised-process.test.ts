import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { httpUp } from "./health";
import { freePort } from "./ports";
import { type ProcessSpec, type RestartPolicy, SupervisedProcess } from "./supervised-process";
import { resolveUser, UNPRIVILEGED_USER } from "./unprivileged";

const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-supervised-test-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const running: SupervisedProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop(1000)));
});

const policy = (overrides: Partial<RestartPolicy> = {}): RestartPolicy => ({
  enabled: true,
  initialDelayMs: 20,
  maxDelayMs: 200,
  resetAfterMs: 60_000,
  ...overrides,
});

let logCounter = 0;
const newLogFile = (name: string) => join(stateDir, `${name}-${++logCounter}.log`);

/** A tiny HTTP server on `port` that logs its pid; `prelude` runs first (e.g. to ignore SIGTERM). */
const serverScript = (port: number, { prelude = "", listenDelayMs = 0 } = {}) => `
${prelude}
console.log("child-started pid=" + process.pid);
console.error("child-stderr pid=" + process.pid);
setTimeout(() => {
  require("node:http").createServer((req, res) => res.end("ok")).listen(${port}, "127.0.0.1");
}, ${listenDelayMs});
`;

function supervised(spec: Partial<ProcessSpec> & Pick<ProcessSpec, "command" | "args">, restart: RestartPolicy) {
  const p = new SupervisedProcess(
    {
      name: "child",
      role: "ai",
      port: 0,
      url: "",
      healthy: async () => false,
      logFile: newLogFile(spec.name ?? "child"),
      startTimeoutMs: 15_000,
      ...spec,
    },
    restart,
  );
  running.push(p);
  return p;
}

async function httpChild(restart: RestartPolicy, options: Parameters<typeof serverScript>[1] = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = supervised(
    {
      name: "http-child",
      command: process.execPath,
      args: ["-e", serverScript(port, options)],
      port,
      url,
      healthy: () => httpUp(url),
    },
    restart,
  );
  return { p, port, url };
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("SupervisedProcess", () => {
  it("start() resolves only once the child is healthy, and the log file receives its stdout and stderr", async () => {
    const { p, url } = await httpChild(policy(), { listenDelayMs: 300 });
    const probes: boolean[] = [];
    const probe = p.spec.healthy;
    p.spec.healthy = async () => {
      const ok = await probe();
      probes.push(ok);
      return ok;
    };
    const healthyEvents: number[] = [];
    p.on("healthy", (pid) => healthyEvents.push(pid));

    const started = p.start();
    // Spawned synchronously, not yet healthy.
    expect(p.state).toBe("starting");
    const pid = p.pid;
    expect(pid).toBeGreaterThan(0);
    expect(healthyEvents).toEqual([]);
    await started;

    expect(p.state).toBe("running");
    expect(p.pid).toBe(pid);
    expect(p.alive).toBe(true);
    expect(healthyEvents).toEqual([pid]);
    // It waited through unhealthy probes (the server listens after 300 ms) and stopped at the first healthy one.
    expect(probes.length).toBeGreaterThan(1);
    expect(probes.slice(0, -1).every((ok) => !ok)).toBe(true);
    expect(probes.at(-1)).toBe(true);
    expect(await httpUp(url)).toBe(true);
    const log = readFileSync(p.spec.logFile, "utf8");
    expect(log).toContain(`child-started pid=${pid}`);
    expect(log).toContain(`child-stderr pid=${pid}`);
  });

  it("restart policy on: a SIGKILLed child comes back with a new pid, restarts counts up, the log is appended", async () => {
    const { p, url } = await httpChild(policy());
    await p.start();
    const pids = [p.pid!];
    const exits: [number | null, NodeJS.Signals | null][] = [];
    p.on("exit", (code, signal) => exits.push([code, signal]));

    for (let round = 1; round <= 2; round++) {
      const back = p.nextHealthy(15_000);
      const previous = p.pid!;
      await p.kill("SIGKILL");
      expect(isAlive(previous)).toBe(false);
      expect(p.state).toBe("backoff");
      expect(p.pid).toBeUndefined();
      const pid = await back;
      expect(pid).not.toBe(previous);
      expect(p.pid).toBe(pid);
      expect(p.state).toBe("running");
      expect(p.restarts).toBe(round);
      expect(isAlive(pid)).toBe(true);
      expect(await httpUp(url)).toBe(true);
      pids.push(pid);
    }
    expect(exits).toEqual([
      [null, "SIGKILL"],
      [null, "SIGKILL"],
    ]);
    expect(new Set(pids).size).toBe(3);
    const log = readFileSync(p.spec.logFile, "utf8");
    for (const pid of pids) expect(log).toContain(`child-started pid=${pid}`);
  });

  it("restart policy off: a SIGKILLed child stays down", async () => {
    const { p, url } = await httpChild(policy({ enabled: false }));
    await p.start();
    const pid = p.pid!;
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      p.once("exit", (code, signal) => resolve([code, signal])),
    );
    await p.kill("SIGKILL");
    expect(await exited).toEqual([null, "SIGKILL"]);
    expect(p.state).toBe("stopped");
    expect(p.pid).toBeUndefined();
    expect(p.alive).toBe(false);
    expect(isAlive(pid)).toBe(false);
    // With a 20 ms initial delay a restart would be healthy long before this window closes.
    await expect(p.nextHealthy(1000)).rejects.toThrow(/did not come back within 1000 ms/);
    expect(p.restarts).toBe(0);
    expect(p.state).toBe("stopped");
    expect(await httpUp(url)).toBe(false);
  });

  it("restarts a child that keeps dying with exponentially growing delays, capped at maxDelayMs", async () => {
    const p = supervised(
      { name: "crasher", command: "sh", args: ["-c", "echo crashing; exit 3"], healthy: async () => false },
      policy({ initialDelayMs: 20, maxDelayMs: 200 }),
    );
    const wanted = 8;
    const exitTimes: number[] = [];
    const exits: [number | null, NodeJS.Signals | null][] = [];
    const delays: number[] = [];
    p.on("backoff", (ms) => delays.push(ms));
    const enough = new Promise<void>((resolve) =>
      p.on("exit", (code, signal) => {
        exitTimes.push(performance.now());
        exits.push([code, signal]);
        if (exitTimes.length === wanted) resolve();
      }),
    );
    await expect(p.start()).rejects.toThrow(/exited while starting/);
    await enough;
    await p.stop(1000);
    expect(p.state).toBe("stopped");

    expect(exits.every(([code, signal]) => code === 3 && signal === null)).toBe(true);
    expect(p.restarts).toBeGreaterThanOrEqual(wanted - 1);
    const gaps = exitTimes.slice(1).map((t, i) => t - exitTimes[i]!);
    const expected = gaps.map((_, i) => Math.min(20 * 2 ** i, 200)); // 20 40 80 160 200 200 200
    const report = `gaps ${gaps.map((g) => g.toFixed(0)).join(", ")} ms, expected about ${expected.join(", ")}`;
    gaps.forEach((gap, i) => {
      // Never earlier than the backoff (1 ms of timer rounding allowed).
      expect(gap, report).toBeGreaterThanOrEqual(expected[i]! - 2);
    });
    // Growing and capped, as scheduled (wall-clock gaps also contain each child's start-up time, which a loaded
    // machine stretches, so the schedule itself is what is checked exactly).
    expect(delays.slice(0, expected.length), report).toEqual(expected);
    expect(readFileSync(p.spec.logFile, "utf8").match(/crashing/g)?.length).toBeGreaterThanOrEqual(wanted);
  });

  it("stop() sends SIGTERM, then SIGKILL after the grace period to a child that ignores SIGTERM", async () => {
    const { p } = await httpChild(policy(), {
      prelude: `process.on("SIGTERM", () => console.log("ignoring SIGTERM"));`,
    });
    await p.start();
    const pid = p.pid!;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => p.once("exit", (_code, signal) => resolve(signal)));
    const t0 = performance.now();
    await p.stop(400);
    const took = performance.now() - t0;
    expect(await exited).toBe("SIGKILL");
    expect(took).toBeGreaterThanOrEqual(390);
    expect(took).toBeLessThan(5000);
    expect(p.state).toBe("stopped");
    expect(p.alive).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    // SIGTERM came first: the child logged it before it was killed.
    expect(readFileSync(p.spec.logFile, "utf8")).toContain("ignoring SIGTERM");
    // Stopped for good: the restart policy does not bring it back.
    await expect(p.nextHealthy(500)).rejects.toThrow(/did not come back/);
    expect(p.restarts).toBe(0);
  });

  it("stop() of a well-behaved child ends it with SIGTERM well before the grace period, without restart", async () => {
    const { p } = await httpChild(policy());
    await p.start();
    const pid = p.pid!;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => p.once("exit", (_code, signal) => resolve(signal)));
    const t0 = performance.now();
    await p.stop(10_000);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(await exited).toBe("SIGTERM");
    expect(p.state).toBe("stopped");
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(p.nextHealthy(300)).rejects.toThrow(/did not come back/);
    expect(p.restarts).toBe(0);
  });

  it("stop() during backoff cancels the pending restart", async () => {
    const { p } = await httpChild(policy({ initialDelayMs: 300, maxDelayMs: 300 }));
    await p.start();
    await p.kill("SIGKILL");
    expect(p.state).toBe("backoff");
    await p.stop(1000);
    expect(p.state).toBe("stopped");
    await expect(p.nextHealthy(800)).rejects.toThrow(/did not come back/);
    expect(p.restarts).toBe(0);
    expect(p.alive).toBe(false);
  });

  it("start() rejects with a message naming the log file when the child exits while starting", async () => {
    const p = supervised(
      {
        name: "dies-at-start",
        command: process.execPath,
        args: ["-e", `console.log("fatal: cannot start"); process.exit(2)`],
        healthy: async () => false,
      },
      policy({ enabled: false }),
    );
    const exited = new Promise<number | null>((resolve) => p.once("exit", (code) => resolve(code)));
    const error = await p.start().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toContain("dies-at-start");
    expect(error!.message).toContain("exited while starting");
    expect(error!.message).toContain(p.spec.logFile);
    expect(await exited).toBe(2);
    expect(p.state).toBe("stopped");
    expect(readFileSync(p.spec.logFile, "utf8")).toContain("fatal: cannot start");
  });

  it("a health answer that arrives after the child died does not make it 'running'", async () => {
    // The probe was answered while the child was up (or by whoever else holds the port), but the answer is delivered
    // only after the child exited: start() must notice the child is gone instead of declaring it healthy.
    let childExited: () => void = () => undefined;
    const exited = new Promise<void>((resolve) => {
      childExited = resolve;
    });
    const p = supervised(
      {
        name: "dies-during-probe",
        command: process.execPath,
        args: ["-e", "setTimeout(() => process.exit(1), 100)"],
        healthy: async () => {
          await exited;
          return true;
        },
      },
      policy({ enabled: false }),
    );
    p.once("exit", () => childExited());
    const outcome = await p.start().then(
      () => "resolved",
      (e: Error) => e.message,
    );
    expect(p.alive).toBe(false);
    expect({ outcome, state: p.state, pid: p.pid }).toEqual({
      outcome: expect.stringContaining("exited while starting"),
      state: "stopped",
      pid: undefined,
    });
  });

  it("start() rejects with a message naming the log file when the child never becomes healthy", async () => {
    const p = supervised(
      {
        name: "never-healthy",
        command: process.execPath,
        args: ["-e", "setInterval(() => {}, 1000)"],
        healthy: async () => false,
        startTimeoutMs: 300,
      },
      policy({ enabled: false }),
    );
    await expect(p.start()).rejects.toThrow(`never-healthy did not become healthy in time (see ${p.spec.logFile})`);
  });

  it("uid/gid: the child runs as that user, with only PATH/LANG/TZ of the runner's environment plus its own env", async () => {
    // As root (CI) the runner's unprivileged user; otherwise our own ids (the only ones we may switch to).
    const who = process.getuid!() === 0 ? resolveUser(UNPRIVILEGED_USER) : undefined;
    const uid = who?.uid ?? process.getuid!();
    const gid = who?.gid ?? process.getgid!();
    process.env.CHATGRID_TEST_RUNNER_SECRET = "runner-only";
    try {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const p = supervised(
        {
          name: "as-user",
          command: process.execPath,
          args: [
            "-e",
            serverScript(port, {
              prelude: `console.log("ids=" + process.getuid() + ":" + process.getgid() + " env=" + Object.keys(process.env).sort().join(","));`,
            }),
          ],
          env: { OWN: "1" },
          uid,
          gid,
          port,
          url,
          healthy: () => httpUp(url),
        },
        policy({ enabled: false }),
      );
      await p.start();
      const log = readFileSync(p.spec.logFile, "utf8");
      expect(log).toContain(`ids=${uid}:${gid} `);
      const env = /env=(\S*)/.exec(log)![1]!.split(",");
      expect(env).toContain("OWN");
      expect(env).toContain("PATH");
      expect(env).not.toContain("CHATGRID_TEST_RUNNER_SECRET");
      expect(env.filter((k) => !["OWN", "PATH", "LANG", "TZ"].includes(k))).toEqual([]);
    } finally {
      delete process.env.CHATGRID_TEST_RUNNER_SECRET;
    }
  });

  it("kill() of a process that is not running does nothing", async () => {
    const p = supervised({ command: "sh", args: ["-c", "exit 0"] }, policy({ enabled: false }));
    await expect(p.kill()).resolves.toBeUndefined();
    expect(p.state).toBe("stopped");
    await expect(p.stop()).resolves.toBeUndefined();
    expect(p.state).toBe("stopped");
  });
});
