import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, openSync, readFileSync } from "node:fs";

/** The last lines of a log, for an error message (the log may be gone with its temp dir by the time one reads it). */
function logTail(file: string, lines = 15): string {
  try {
    const tail = readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines);
    return tail.length > 0 ? `\n  last lines:\n    ${tail.join("\n    ")}` : "";
  } catch {
    return "";
  }
}

export type ProcessRole = "redis" | "kafka" | "ai" | "gateway" | "nginx";
export type ProcessState = "stopped" | "starting" | "running" | "backoff" | "failed";

export interface ProcessSpec {
  name: string;
  role: ProcessRole;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** The port it serves (the main one), for people and scripts. */
  port: number;
  url: string;
  /** Resolves true once the process serves. */
  healthy: () => Promise<boolean>;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** How long start() waits for health. */
  startTimeoutMs?: number;
  /**
   * Run as this user and group (the runner, as root, drops Redis to an unprivileged user). Such a process gets only
   * PATH, LANG and TZ from the runner's environment (which may hold API keys), plus `env`.
   */
  uid?: number;
  gid?: number;
}

/** What a process that runs as another user inherits from the runner's environment. */
const PASSED_TO_OTHER_USERS = ["PATH", "LANG", "TZ"];

export interface RestartPolicy {
  enabled: boolean;
  initialDelayMs: number;
  maxDelayMs: number;
  /** A process up at least this long starts the backoff from the beginning again. */
  resetAfterMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  enabled: true,
  initialDelayMs: 250,
  maxDelayMs: 10_000,
  resetAfterMs: 30_000,
};

/**
 * One child process under supervision: started, health-checked, restarted with exponential backoff when it dies
 * unexpectedly, and stopped with SIGTERM (then SIGKILL) when asked.
 */
export class SupervisedProcess extends EventEmitter<{
  healthy: [number];
  exit: [number | null, NodeJS.Signals | null];
  /** A restart was scheduled after this many milliseconds. */
  backoff: [number];
  failed: [Error];
}> {
  state: ProcessState = "stopped";
  restarts = 0;
  private child: ChildProcess | undefined;
  private stopping = false;
  private startedAt = 0;
  private backoffTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    readonly spec: ProcessSpec,
    readonly policy: RestartPolicy = defaultRestartPolicy,
  ) {
    super();
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.state === "running" || this.state === "starting" ? this.child?.pid : undefined;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the process and resolves once it is healthy; rejects if it exits or stays unhealthy. */
  async start(): Promise<void> {
    this.stopping = false;
    clearTimeout(this.backoffTimer);
    this.spawnChild();
    await this.waitHealthy();
  }

  private spawnChild(): void {
    const log = openSync(this.spec.logFile, "a");
    const { uid, gid } = this.spec;
    const inherited =
      uid === undefined
        ? process.env
        : Object.fromEntries(PASSED_TO_OTHER_USERS.filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd,
      env: { ...inherited, ...this.spec.env },
      stdio: ["ignore", log, log],
      uid,
      gid,
    });
    closeSync(log);
    this.child = child;
    this.state = "starting";
    this.startedAt = Date.now();
    child.once("exit", (code, signal) => this.onExit(child, code, signal));
    child.once("error", () => undefined);
  }

  private async waitHealthy(): Promise<void> {
    const child = this.child;
    const deadline = Date.now() + (this.spec.startTimeoutMs ?? 60_000);
    const gone = () => !child || child !== this.child || child.exitCode !== null || child.signalCode !== null;
    for (;;) {
      if (gone()) {
        const how = child?.signalCode ? `signal ${child.signalCode}` : `code ${child?.exitCode ?? "?"}`;
        throw new Error(
          `${this.name} exited while starting (${how}; see ${this.spec.logFile})${logTail(this.spec.logFile)}`,
        );
      }
      // Re-check after the probe: the child may have died while it was in flight (and something else answered).
      if ((await this.spec.healthy().catch(() => false)) && !gone()) break;
      if (Date.now() > deadline)
        throw new Error(`${this.name} did not become healthy in time (see ${this.spec.logFile})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.state = "running";
    this.emit("healthy", child?.pid ?? 0);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    if (this.stopping || !this.policy.enabled) {
      this.state = "stopped";
      this.emit("exit", code, signal);
      return;
    }
    if (Date.now() - this.startedAt > this.policy.resetAfterMs) this.failures = 0;
    const delay = Math.min(this.policy.initialDelayMs * 2 ** this.failures, this.policy.maxDelayMs);
    this.failures++;
    this.state = "backoff";
    this.emit("exit", code, signal);
    this.emit("backoff", delay);
    this.backoffTimer = setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.spawnChild();
      this.waitHealthy().catch((error: Error) => {
        // It died again while starting: its exit handler schedules the next try; only report a hang.
        if (this.alive) this.emit("failed", error);
      });
    }, delay);
  }

  /** Sends a signal (chaos, or a graceful SIGTERM); supervision restarts the process unless it is being stopped. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }

  /** Resolves at the next time the process becomes healthy (after a restart). */
  nextHealthy(timeoutMs = 60_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name} did not come back within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.once("healthy", (pid) => {
        clearTimeout(timer);
        resolve(pid);
      });
    });
  }

  /** Stops for good: no restart; SIGTERM, then SIGKILL after the grace period. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.backoffTimer);
    const child = this.child;
    if (!child || !this.alive) {
      this.state = "stopped";
      return;
    }
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
    this.state = "stopped";
  }

  /** Synchronous last resort on process exit: nothing is left behind. */
  killNow(): void {
    this.stopping = true;
    clearTimeout(this.backoffTimer);
    if (this.alive) this.child?.kill("SIGKILL");
  }
}
