import type { Logger, StreamStore } from "@chatgrid/broker";
import type { AiMetrics } from "./metrics";
import type { StreamRun } from "./stream-run";

/**
 * Renews the lease of every stream this node runs, a few times per lease period. The renewal also carries the
 * cancel flag, so a cancel whose pub/sub message was missed (Redis reconnecting) still stops the stream.
 */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private warned = false;

  constructor(
    private readonly runs: Map<string, StreamRun>,
    private readonly store: StreamStore,
    private readonly node: string,
    private readonly log: Logger,
    private readonly metrics: AiMetrics,
  ) {}

  start(): void {
    const interval = Math.max(100, Math.floor(this.store.options.leaseMs / 3));
    this.timer = setInterval(() => void this.renewAll(), interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async renewAll(): Promise<void> {
    await Promise.all(
      [...this.runs.values()].map(async (run) => {
        try {
          const result = await this.store.renew(run.streamId, run.attempt, this.node);
          this.metrics.leaseRenewals.inc({ result });
          if (result === "lost") run.stop("lost");
          else if (result === "cancel_requested") run.stop("cancel");
          this.warned = false;
        } catch (error) {
          this.metrics.leaseRenewals.inc({ result: "error" });
          if (!this.warned) this.log.warn({ err: error }, "lease renewal failed (Redis away?)");
          this.warned = true;
        }
      }),
    );
  }
}
