import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export type NodeKind = "gateway" | "ai";

/** One gateway or AI node as a real child process (tsx runs the TypeScript entry), with its output kept. */
export class NodeProcess {
  private child: ChildProcess | undefined;
  private output: string[] = [];
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;

  constructor(
    readonly name: string,
    readonly kind: NodeKind,
    readonly env: Record<string, string>,
    /** URL whose `/health` answers 200 when the node is up (AI node: its port; gateway: its internal port). */
    readonly healthUrl: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitCode === null && this.exitSignal === null;
  }

  async start(): Promise<void> {
    this.exitCode = null;
    this.exitSignal = null;
    const entry = join(ROOT, "apps", this.kind, "src", "main.ts");
    const child = spawn(process.execPath, ["--import", "tsx", entry], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: process.env.CHATGRID_TEST_LOG_LEVEL ?? "warn", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 400) this.output.splice(0, 200);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.once("exit", (code, signal) => {
      this.exitCode = code;
      this.exitSignal = signal;
    });
    await waitFor(
      `${this.name} healthy`,
      async () => {
        if (!this.running) throw new Error(`${this.name} exited (${this.exitCode ?? this.exitSignal}): ${this.logs()}`);
        const response = await fetch(`${this.healthUrl}/health`, { signal: AbortSignal.timeout(1000) });
        return response.status < 500 || this.kind === "gateway";
      },
      30_000,
      50,
    );
  }

  /** Sends a signal and waits until the process has exited. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }

  logs(): string {
    return this.output.join("").slice(-4000);
  }
}
