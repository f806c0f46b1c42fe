import { CloseCode } from "@chatgrid/protocol";

/**
 * When to try the socket again (docs/protocol.md: exponential backoff with jitter, start 250 ms, cap 10 s). Pure apart
 * from the injected random source, so it is tested with fixed numbers.
 */
export interface ReconnectPolicyOptions {
  startMs?: number;
  capMs?: number;
  /** [0, 1), like Math.random. */
  random?: () => number;
}

/** 1013 "try again later": the gateway could not reach Redis during hello (docs/protocol.md); treated like 1012. */
export const TRY_AGAIN_LATER = 1013;

/** Close codes after which the client reconnects at once (the server asked it to go elsewhere). */
const IMMEDIATE = new Set<number>([CloseCode.serviceRestart, TRY_AGAIN_LATER, CloseCode.slowConsumer]);
/** "At once" still spreads a crowd of clients a little. */
const IMMEDIATE_SPREAD_MS = 100;
/** After being rate limited, wait at least this long. */
const RATE_LIMITED_MIN_MS = 1_000;

/**
 * The backoff ceiling for the n-th consecutive failure (0-based): start · 2ⁿ, at most cap. The delay is drawn from
 * [ceiling/2, ceiling] ("equal jitter"): never a stampede, never much longer than the schedule.
 */
export function backoffDelay(attempt: number, options: ReconnectPolicyOptions = {}): number {
  const start = options.startMs ?? 250;
  const cap = options.capMs ?? 10_000;
  const random = options.random ?? Math.random;
  const ceiling = Math.min(cap, start * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Keeps the count of consecutive failures; `succeeded` (a welcome) starts the schedule over. */
export class ReconnectPolicy {
  private failures = 0;

  constructor(private readonly options: ReconnectPolicyOptions = {}) {}

  /** Consecutive attempts that failed since the last welcome. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt, after a close with `closeCode` (undefined: the connection never opened). */
  nextDelay(closeCode?: number): number {
    const attempt = this.failures++;
    const random = this.options.random ?? Math.random;
    if (attempt === 0 && closeCode !== undefined && IMMEDIATE.has(closeCode)) {
      return Math.round(random() * IMMEDIATE_SPREAD_MS);
    }
    const delay = backoffDelay(attempt, this.options);
    // Refused by a limit (the rate, or the session's sockets on that gateway): coming back at once only repeats it.
    const limited = closeCode === CloseCode.rateLimited || closeCode === CloseCode.tooManySockets;
    return limited ? Math.max(delay, RATE_LIMITED_MIN_MS) : delay;
  }

  succeeded(): void {
    this.failures = 0;
  }
}
