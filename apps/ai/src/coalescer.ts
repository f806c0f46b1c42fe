/**
 * Collects provider tokens for a few milliseconds and writes them as one chunk, saving Redis round trips
 * (docs/architecture.md invariant 9: the client sees the same text). Writes are serialised: chunk order is token order.
 */
export class Coalescer {
  private buffer = "";
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private failure: unknown;

  constructor(
    private readonly windowMs: number,
    private readonly write: (text: string) => Promise<void>,
    /** Flush at once when the buffer reaches this many characters. */
    private readonly maxChars = 2048,
  ) {}

  push(text: string): void {
    if (this.failure !== undefined || text.length === 0) return;
    this.buffer += text;
    if (this.windowMs === 0 || this.buffer.length >= this.maxChars) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.windowMs);
  }

  /** Writes in flight; the caller waits on `settled()` when this grows, so a slow Redis slows the provider loop. */
  get backlog(): number {
    return this.pending;
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buffer.length === 0 || this.failure !== undefined) return;
    const text = this.buffer;
    this.buffer = "";
    this.pending++;
    this.chain = this.chain
      .then(() => (this.failure === undefined ? this.write(text) : undefined))
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.pending--;
      });
  }

  /** Waits for the writes issued so far; rethrows the first write failure. */
  async settled(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Flushes what is buffered and waits for every write. */
  async drain(): Promise<void> {
    this.flush();
    await this.settled();
  }

  /** Drops what is buffered (the stream was lost or cancelled). */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.buffer = "";
  }
}
