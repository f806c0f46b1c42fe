/**
 * Requests between the benchmark's coordinator and its child processes (publisher, clients) over Node's IPC
 * channel: each request has an id, each answer carries it back with a result or an error (docs/benchmarks.md).
 */
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../infra/runner";

interface Request {
  id: number;
  type: string;
  payload: unknown;
}

interface Answer {
  id: number;
  result?: unknown;
  error?: string;
}

const isAnswer = (message: unknown): message is Answer =>
  typeof message === "object" && message !== null && typeof (message as Answer).id === "number";

/** A child process of the benchmark, spoken to by request and answer. */
export class BenchChild {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private exited: string | undefined;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on("message", (message: unknown) => {
      if (!isAnswer(message)) return;
      const waiter = this.waiting.get(message.id);
      if (!waiter) return;
      this.waiting.delete(message.id);
      if (message.error !== undefined) waiter.reject(new Error(`${name}: ${message.error}`));
      else waiter.resolve(message.result);
    });
    child.once("exit", (code, signal) => {
      this.exited = `${name} exited (${signal ?? code})`;
      for (const waiter of this.waiting.values()) waiter.reject(new Error(this.exited));
      this.waiting.clear();
    });
  }

  /** Forks `bench/<script>` under tsx, with the `advanced` serialization (typed arrays cross as they are). */
  static start(name: string, script: string, nodeArgs: string[] = []): BenchChild {
    const child = fork(join(REPO_ROOT, "bench", script), [], {
      cwd: REPO_ROOT,
      execArgv: ["--import", "tsx", ...nodeArgs],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    return new BenchChild(name, child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  request<T>(type: string, payload: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const request: Request = { id, type, payload };
      this.child.send(request);
    });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

/** In a child: answers the coordinator's requests with these handlers; exits when the coordinator goes away. */
export function serveRequests(handlers: Record<string, (payload: never) => unknown>): void {
  process.on("disconnect", () => process.exit(0));
  process.on("message", (message: unknown) => {
    const { id, type, payload } = message as Request;
    const handler = handlers[type];
    const answer = (body: Omit<Answer, "id">) => process.send?.({ id, ...body });
    if (!handler) {
      answer({ error: `unknown request ${type}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(payload as never))
      .then(
        (result) => answer({ result }),
        (error: unknown) => answer({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      );
  });
}
