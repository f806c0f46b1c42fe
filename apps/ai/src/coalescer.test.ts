import { afterEach, describe, expect, it, vi } from "vitest";
import { Coalescer } from "./coalescer";

/** A write function that records chunks; writes can be made to wait until the test lets them finish. */
function recorder() {
  const chunks: string[] = [];
  const gates: (() => void)[] = [];
  let slow = false;
  let inFlight = 0;
  let maxInFlight = 0;
  let onWaiting: (() => void) | undefined;
  const write = async (text: string): Promise<void> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    if (slow) {
      const gate = new Promise<void>((resolve) => gates.push(resolve));
      onWaiting?.();
      await gate;
    }
    chunks.push(text);
    inFlight--;
  };
  return {
    chunks,
    write,
    slowly() {
      slow = true;
    },
    /** Lets the oldest waiting write finish. */
    releaseOne(): boolean {
      const gate = gates.shift();
      gate?.();
      return gate !== undefined;
    },
    /** Resolves once a write is waiting to be released. */
    whenWaiting(): Promise<void> {
      if (gates.length > 0) return Promise.resolve();
      return new Promise((resolve) => {
        onWaiting = () => {
          onWaiting = undefined;
          resolve();
        };
      });
    },
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("Coalescer", () => {
  it("writes the tokens pushed within the window as one chunk", async () => {
    vi.useFakeTimers();
    const rec = recorder();
    const coalescer = new Coalescer(10, rec.write);
    coalescer.push("Hello");
    coalescer.push(",");
    await vi.advanceTimersByTimeAsync(5);
    coalescer.push(" world");
    expect(rec.chunks).toEqual([]);
    await vi.advanceTimersByTimeAsync(5);
    expect(rec.chunks).toEqual(["Hello, world"]);
    // The window starts again with the next token.
    coalescer.push("!");
    await vi.advanceTimersByTimeAsync(9);
    expect(rec.chunks).toEqual(["Hello, world"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(rec.chunks).toEqual(["Hello, world", "!"]);
    await coalescer.drain();
    expect(rec.chunks).toEqual(["Hello, world", "!"]);
  });

  it("with windowMs 0 writes each token as its own chunk", async () => {
    const rec = recorder();
    const coalescer = new Coalescer(0, rec.write);
    for (const token of ["a", "b", "c"]) coalescer.push(token);
    await coalescer.drain();
    expect(rec.chunks).toEqual(["a", "b", "c"]);
  });

  it("ignores empty tokens", async () => {
    const rec = recorder();
    const coalescer = new Coalescer(0, rec.write);
    coalescer.push("");
    coalescer.push("x");
    coalescer.push("");
    await coalescer.drain();
    expect(rec.chunks).toEqual(["x"]);
  });

  it("keeps token order across many pushes with a slow write, one write at a time", async () => {
    vi.useFakeTimers();
    const rec = recorder();
    rec.slowly();
    const coalescer = new Coalescer(5, rec.write);
    const tokens = Array.from({ length: 200 }, (_, i) => `t${i} `);
    for (const [i, token] of tokens.entries()) {
      coalescer.push(token);
      if (i % 7 === 0) await vi.advanceTimersByTimeAsync(5);
      if (i % 13 === 0) rec.releaseOne();
    }
    const drained = coalescer.drain();
    // Let the remaining writes finish one by one.
    while (rec.chunks.join("") !== tokens.join("")) {
      if (!rec.releaseOne()) await vi.advanceTimersByTimeAsync(1);
    }
    await drained;
    expect(rec.chunks.join("")).toBe(tokens.join(""));
    expect(rec.chunks.length).toBeGreaterThan(1);
    expect(rec.chunks.length).toBeLessThan(tokens.length);
    expect(rec.maxInFlight).toBe(1);
    expect(coalescer.backlog).toBe(0);
  });

  it("backlog counts writes in flight", async () => {
    const rec = recorder();
    rec.slowly();
    const coalescer = new Coalescer(0, rec.write);
    coalescer.push("a");
    coalescer.push("b");
    expect(coalescer.backlog).toBe(2);
    const settled = coalescer.settled();
    await rec.whenWaiting();
    expect(rec.releaseOne()).toBe(true);
    expect(coalescer.backlog).toBe(2);
    await rec.whenWaiting();
    expect(coalescer.backlog).toBe(1);
    expect(rec.releaseOne()).toBe(true);
    await settled;
    expect(coalescer.backlog).toBe(0);
    expect(rec.chunks).toEqual(["a", "b"]);
  });

  it("rethrows a write failure from drain() and ignores later pushes", async () => {
    const written: string[] = [];
    const failure = new Error("redis away");
    let calls = 0;
    const coalescer = new Coalescer(0, async (text) => {
      calls++;
      if (text === "bad") throw failure;
      written.push(text);
    });
    coalescer.push("ok");
    coalescer.push("bad");
    coalescer.push("queued after the failure");
    await expect(coalescer.drain()).rejects.toBe(failure);
    coalescer.push("later");
    await expect(coalescer.drain()).rejects.toBe(failure);
    await expect(coalescer.settled()).rejects.toBe(failure);
    expect(written).toEqual(["ok"]);
    // The write queued behind the failing one is not attempted either.
    expect(calls).toBe(2);
  });

  it("a failure in a timer-driven flush surfaces on drain()", async () => {
    vi.useFakeTimers();
    const failure = new Error("fenced");
    const coalescer = new Coalescer(10, async () => {
      throw failure;
    });
    coalescer.push("x");
    await vi.advanceTimersByTimeAsync(10);
    await expect(coalescer.drain()).rejects.toBe(failure);
  });

  it("maxChars forces an early flush", async () => {
    vi.useFakeTimers();
    const rec = recorder();
    const coalescer = new Coalescer(1000, rec.write, 8);
    coalescer.push("abcd");
    coalescer.push("efg");
    await vi.advanceTimersByTimeAsync(0);
    expect(rec.chunks).toEqual([]);
    coalescer.push("hij"); // 10 characters >= 8
    await vi.advanceTimersByTimeAsync(0);
    expect(rec.chunks).toEqual(["abcdefghij"]);
    // The window timer of the first batch was cancelled: nothing more is written when it would have fired.
    coalescer.push("k");
    await vi.advanceTimersByTimeAsync(999);
    expect(rec.chunks).toEqual(["abcdefghij"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(rec.chunks).toEqual(["abcdefghij", "k"]);
  });

  it("discard() drops what is buffered", async () => {
    vi.useFakeTimers();
    const rec = recorder();
    const coalescer = new Coalescer(10, rec.write);
    coalescer.push("dropped");
    coalescer.discard();
    await vi.advanceTimersByTimeAsync(20);
    await coalescer.drain();
    expect(rec.chunks).toEqual([]);
  });
});
