import type { ChannelMessage, StoredEvent, StreamSnapshot } from "@chatgrid/broker";
import { CloseCode, StreamEventSchema } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import { ClientConnection, type ConnectionCounters, type HistorySource, type Transport } from "./client-connection";

/* ------------------------------------------------------------------------------------------------------------
 * Fakes
 * ---------------------------------------------------------------------------------------------------------- */

class FakeTransport implements Transport {
  readonly sent: string[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  bufferedAmount = 0;
  open = true;

  send(frame: string): void {
    if (!this.open) throw new Error("send on a closed transport");
    this.sent.push(frame);
  }

  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.open = false;
  }

  /** Every sent frame, parsed. */
  frames(): Record<string, unknown>[] {
    return this.sent.map((frame) => JSON.parse(frame) as Record<string, unknown>);
  }

  /** The stream frames of one stream in the order they were sent. */
  framesOf(streamId: string): Record<string, unknown>[] {
    return this.frames().filter((frame) => frame.streamId === streamId && typeof frame.seq === "number");
  }

  seqsOf(streamId: string): number[] {
    return this.framesOf(streamId).map((frame) => frame.seq as number);
  }
}

interface FakeStreamState {
  events: StoredEvent[];
  /** Text since the last reset and the seq of the last event, as Redis keeps them beside the history. */
  text: string;
  seq: number;
  finishReason?: string;
}

interface PendingRead {
  streamId: string;
  afterSeq: number;
  count: number;
  /** Answers with the history as it is now (Redis ran the read now). */
  answer(): void;
  /** Answers with the given events. */
  answerWith(events: StoredEvent[]): void;
  fail(error: Error): void;
}

interface PendingSnapshot {
  streamId: string;
  answer(): void;
}

/**
 * An in-memory Redis: `append` stores an event and returns the message that Redis would publish; the test decides
 * whether (and when) it is delivered live. Reads answer at once unless `hold()` was called, in which case they wait
 * until the test answers them, so live deliveries can be interleaved with a read in flight.
 */
class FakeHistory implements HistorySource {
  readonly streams = new Map<string, FakeStreamState>();
  readonly reads: { streamId: string; afterSeq: number; count: number }[] = [];
  private holdingReads = false;
  private holdingSnapshots = false;
  private readonly pendingReads: PendingRead[] = [];
  private readonly pendingSnapshots: PendingSnapshot[] = [];
  private readWaiters: ((read: PendingRead) => void)[] = [];
  private snapshotWaiters: ((snapshot: PendingSnapshot) => void)[] = [];
  failNextRead: Error | undefined;

  private state(streamId: string): FakeStreamState {
    let state = this.streams.get(streamId);
    if (!state) {
      state = { events: [], text: "", seq: -1 };
      this.streams.set(streamId, state);
    }
    return state;
  }

  append(streamId: string, kind: "start" | "chunk" | "reset" | "done", extra: { delta?: string } = {}): ChannelMessage {
    const state = this.state(streamId);
    const seq = state.seq + 1;
    let frame: string;
    switch (kind) {
      case "start":
        frame = JSON.stringify({
          type: "start",
          streamId,
          conversationId: "conv_1",
          messageId: "msg_1",
          seq,
          aiNode: "ai-1",
        });
        state.text = "";
        break;
      case "chunk": {
        const delta = extra.delta ?? `t${seq} `;
        frame = JSON.stringify({ type: "chunk", streamId, seq, delta });
        state.text += delta;
        break;
      }
      case "reset":
        frame = JSON.stringify({ type: "reset", streamId, seq });
        state.text = "";
        break;
      case "done":
        frame = JSON.stringify({ type: "done", streamId, seq, finishReason: "stop" });
        state.finishReason = "stop";
        break;
    }
    state.seq = seq;
    state.events.push({ seq, frame });
    return { streamId, seq, frame };
  }

  /** Appends start and `chunks` chunks (and done); returns the messages. */
  appendMany(streamId: string, chunks: number, done = false): ChannelMessage[] {
    const messages = [this.append(streamId, "start")];
    for (let i = 0; i < chunks; i++) messages.push(this.append(streamId, "chunk"));
    if (done) messages.push(this.append(streamId, "done"));
    return messages;
  }

  /** Redis trimmed the history: only events with seq >= fromSeq remain. */
  trimBefore(streamId: string, fromSeq: number): void {
    const state = this.state(streamId);
    state.events = state.events.filter((event) => event.seq >= fromSeq);
  }

  /** The history key expired; text and seq remain. */
  expire(streamId: string): void {
    this.state(streamId).events = [];
  }

  textAt(streamId: string): string {
    return this.state(streamId).text;
  }

  hold(): void {
    this.holdingReads = true;
  }

  holdSnapshots(): void {
    this.holdingSnapshots = true;
  }

  /** The next read the connection issues (already issued or still to come). */
  nextRead(): Promise<PendingRead> {
    const pending = this.pendingReads.shift();
    if (pending) return Promise.resolve(pending);
    return new Promise((resolve) => this.readWaiters.push(resolve));
  }

  nextSnapshot(): Promise<PendingSnapshot> {
    const pending = this.pendingSnapshots.shift();
    if (pending) return Promise.resolve(pending);
    return new Promise((resolve) => this.snapshotWaiters.push(resolve));
  }

  private read(streamId: string, afterSeq: number, count: number): StoredEvent[] {
    return (this.streams.get(streamId)?.events ?? []).filter((event) => event.seq > afterSeq).slice(0, count);
  }

  readAfter(streamId: string, afterSeq: number, count: number): Promise<StoredEvent[]> {
    this.reads.push({ streamId, afterSeq, count });
    if (this.failNextRead) {
      const error = this.failNextRead;
      this.failNextRead = undefined;
      return Promise.reject(error);
    }
    if (!this.holdingReads) return Promise.resolve(this.read(streamId, afterSeq, count));
    return new Promise((resolve, reject) => {
      const pending: PendingRead = {
        streamId,
        afterSeq,
        count,
        answer: () => resolve(this.read(streamId, afterSeq, count)),
        answerWith: (events) => resolve(events),
        fail: reject,
      };
      const waiter = this.readWaiters.shift();
      if (waiter) waiter(pending);
      else this.pendingReads.push(pending);
    });
  }

  /** Like StreamStore.snapshot: an ended stream's snapshot carries its stored done frame. */
  private snap(streamId: string): StreamSnapshot | undefined {
    const state = this.streams.get(streamId);
    if (!state || state.seq < 0) return undefined;
    return state.finishReason
      ? {
          seq: state.seq,
          content: state.text,
          doneFrame: JSON.stringify({ type: "done", streamId, seq: state.seq, finishReason: state.finishReason }),
        }
      : { seq: state.seq, content: state.text };
  }

  snapshot(streamId: string): Promise<StreamSnapshot | undefined> {
    if (!this.holdingSnapshots) return Promise.resolve(this.snap(streamId));
    return new Promise((resolve) => {
      const pending: PendingSnapshot = { streamId, answer: () => resolve(this.snap(streamId)) };
      const waiter = this.snapshotWaiters.shift();
      if (waiter) waiter(pending);
      else this.pendingSnapshots.push(pending);
    });
  }
}

class FakeCounters implements ConnectionCounters {
  deliveredCount = 0;
  replayedCount = 0;
  gaps = 0;
  snapshots = 0;
  slowConsumers = 0;
  delivered(count: number): void {
    this.deliveredCount += count;
  }
  replayed(count: number): void {
    this.replayedCount += count;
  }
  gapFilled(): void {
    this.gaps++;
  }
  snapshot(): void {
    this.snapshots++;
  }
  slowConsumer(): void {
    this.slowConsumers++;
  }
  readonly historyFailures: { streamId: string; error: unknown }[] = [];
  historyFailed(streamId: string, error: unknown): void {
    this.historyFailures.push({ streamId, error });
  }
}

const MAX_BUFFERED = 1000;

function setup() {
  const transport = new FakeTransport();
  const history = new FakeHistory();
  const counters = new FakeCounters();
  const connection = new ClientConnection("sess_1", transport, history, MAX_BUFFERED, counters);
  return { transport, history, counters, connection };
}

/** Lets every pending promise callback run (the fakes answer through promises only, never timers). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The protocol's per-socket guarantee: seqs strictly increasing by one, starting right after `after`. */
function expectContiguous(seqs: number[], after: number, last: number): void {
  expect(seqs).toEqual(range(after + 1, last));
}

/* ------------------------------------------------------------------------------------------------------------
 * Tests
 * ---------------------------------------------------------------------------------------------------------- */

describe("ClientConnection live delivery", () => {
  it("passes in-order live events straight through, byte for byte, without reading history", () => {
    const { transport, history, counters, connection } = setup();
    const messages = history.appendMany("st_a", 4, true);
    for (const message of messages) connection.deliver(message);
    expect(transport.sent).toEqual(messages.map((m) => m.frame));
    expectContiguous(transport.seqsOf("st_a"), -1, 5);
    expect(history.reads).toEqual([]);
    expect(counters.deliveredCount).toBe(6);
    for (const frame of transport.frames()) expect(StreamEventSchema.safeParse(frame).success).toBe(true);
  });

  it("drops a duplicate live event", () => {
    const { transport, history, connection } = setup();
    const [m0, m1, m2] = history.appendMany("st_a", 2);
    for (const message of [m0!, m1!, m1!, m0!, m2!, m2!]) connection.deliver(message);
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2]);
    expect(history.reads).toEqual([]);
  });

  it("keeps streams independent: a gap in one does not hold the other back", async () => {
    const { transport, history, connection } = setup();
    const a = history.appendMany("st_a", 2);
    const b = history.appendMany("st_b", 3);
    history.hold();
    connection.deliver(a[0]!);
    connection.deliver(a[2]!); // gap in st_a: a read starts
    const read = await history.nextRead();
    for (const message of b) connection.deliver(message);
    expect(transport.seqsOf("st_b")).toEqual([0, 1, 2, 3]);
    expect(transport.seqsOf("st_a")).toEqual([0]);
    read.answer();
    await settle();
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2]);
    connection.deliver(history.append("st_a", "chunk"));
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2, 3]);
  });
});

describe("ClientConnection gap filling", () => {
  it("holds live events at a gap, reads history, merges without duplicates, then releases what came meanwhile", async () => {
    const { transport, history, counters, connection } = setup();
    const [m0, m1] = history.appendMany("st_a", 1);
    connection.deliver(m0!);
    connection.deliver(m1!);
    // Seqs 2 and 3 were published while this gateway missed them.
    history.append("st_a", "chunk");
    history.append("st_a", "chunk");
    history.hold();
    const m4 = history.append("st_a", "chunk");
    connection.deliver(m4);
    const read = await history.nextRead();
    expect(read).toMatchObject({ streamId: "st_a", afterSeq: 1 });
    // While the read is in flight, more live events arrive; nothing may pass the gap.
    const m5 = history.append("st_a", "chunk");
    const m6 = history.append("st_a", "chunk");
    connection.deliver(m5);
    connection.deliver(m6);
    expect(transport.seqsOf("st_a")).toEqual([0, 1]);
    // Redis ran the read after 5 and 6 were appended: history overlaps the held events.
    read.answer();
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 6);
    expect(counters.gaps).toBe(1);
    // Live delivery goes on afterwards, and late duplicates are dropped.
    connection.deliver(m5);
    const m7 = history.append("st_a", "chunk");
    connection.deliver(m7);
    expectContiguous(transport.seqsOf("st_a"), -1, 7);
    expect(history.reads).toHaveLength(1);
  });

  it("releases held events that history did not contain yet", async () => {
    const { transport, history, connection } = setup();
    const [m0] = history.appendMany("st_a", 3);
    connection.deliver(m0!);
    history.hold();
    const m4 = history.append("st_a", "chunk");
    connection.deliver(m4);
    const read = await history.nextRead();
    const events = (history.streams.get("st_a")?.events ?? []).filter((e) => e.seq > 0 && e.seq <= 3);
    const m5 = history.append("st_a", "chunk");
    connection.deliver(m5);
    read.answerWith(events); // the read ran before 4 and 5 were appended
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 5);
  });

  it("reads again when history leaves a gap before the held events", async () => {
    const { transport, history, connection } = setup();
    const [m0] = history.appendMany("st_a", 5);
    connection.deliver(m0!);
    history.hold();
    const m6 = history.append("st_a", "chunk");
    connection.deliver(m6);
    const first = await history.nextRead();
    // A short page: seqs 1..2 only.
    first.answerWith((history.streams.get("st_a")?.events ?? []).filter((e) => e.seq >= 1 && e.seq <= 2));
    const second = await history.nextRead();
    expect(second.afterSeq).toBe(2);
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2]);
    second.answer();
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 6);
  });

  it("fills a stream first seen mid-way from seq 0", async () => {
    const { transport, history, connection } = setup();
    const messages = history.appendMany("st_a", 5);
    connection.deliver(messages[5]!);
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 5);
    expect(transport.sent).toEqual(messages.map((m) => m.frame));
    expect(history.reads[0]).toMatchObject({ streamId: "st_a", afterSeq: -1 });
  });

  it("a failed history read sends a generic error frame (the detail goes to the counters); the next live event starts a new fill", async () => {
    const { transport, history, counters, connection } = setup();
    const [m0] = history.appendMany("st_a", 3);
    connection.deliver(m0!);
    const failure = new Error("connect ECONNREFUSED 10.0.3.7:6379 (redis-primary.internal)");
    history.failNextRead = failure;
    const m4 = history.append("st_a", "chunk");
    connection.deliver(m4);
    await settle();
    const errors = transport.frames().filter((f) => f.type === "error");
    expect(errors).toEqual([
      {
        type: "error",
        code: "unavailable",
        message: "could not read the stream's history now; resume again",
        streamId: "st_a",
      },
    ]);
    // Nothing of the Redis error reaches the user: no address, port, host or error text.
    expect(transport.sent.join("")).not.toMatch(/ECONNREFUSED|10\.0\.3\.7|6379|redis-primary/);
    expect(counters.historyFailures).toEqual([{ streamId: "st_a", error: failure }]);
    expect(transport.seqsOf("st_a")).toEqual([0]);
    const m5 = history.append("st_a", "chunk");
    connection.deliver(m5);
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 5);
  });

  it("catchUp() after a missed range fills the gap without waiting for the next live event", async () => {
    const { transport, history, connection } = setup();
    const a = history.appendMany("st_a", 1);
    const b = history.appendMany("st_b", 1, true);
    for (const message of [...a, ...b]) connection.deliver(message);
    // The subscription was lost; these were published meanwhile.
    history.append("st_a", "chunk");
    history.append("st_a", "chunk");
    history.append("st_a", "done");
    connection.catchUp();
    await settle();
    expectContiguous(transport.seqsOf("st_a"), -1, 4);
    expectContiguous(transport.seqsOf("st_b"), -1, 2);
    // An ended stream has nothing to catch up.
    expect(history.reads.map((r) => r.streamId)).toEqual(["st_a"]);
    // Nothing more on a second catch-up: both ended.
    connection.catchUp();
    await settle();
    expect(history.reads).toHaveLength(1);
    expect(transport.sent).toHaveLength(8);
  });

  it("drops duplicates after done", () => {
    const { transport, history, connection } = setup();
    const messages = history.appendMany("st_a", 2, true);
    for (const message of messages) connection.deliver(message);
    for (const message of messages) connection.deliver(message);
    expectContiguous(transport.seqsOf("st_a"), -1, 3);
    expect(transport.sent).toHaveLength(4);
    expect(history.reads).toEqual([]);
  });
});

describe("ClientConnection resume", () => {
  it("sends exactly the events after afterSeq, then live ones, with live events during the read merged", async () => {
    const { transport, history, counters, connection } = setup();
    const messages = history.appendMany("st_a", 5);
    history.hold();
    const resumed = connection.resume("st_a", 2);
    const read = await history.nextRead();
    expect(read).toMatchObject({ streamId: "st_a", afterSeq: 2 });
    // A late live copy of 5 and a new 6 arrive while history is read.
    connection.deliver(messages[5]!);
    const m6 = history.append("st_a", "chunk");
    connection.deliver(m6);
    expect(transport.sent).toEqual([]);
    read.answerWith((history.streams.get("st_a")?.events ?? []).filter((e) => e.seq > 2 && e.seq <= 5));
    await resumed;
    expectContiguous(transport.seqsOf("st_a"), 2, 6);
    expect(counters.replayedCount).toBe(3);
    const m7 = history.append("st_a", "chunk");
    connection.deliver(m7);
    expectContiguous(transport.seqsOf("st_a"), 2, 7);
  });

  it("without afterSeq starts at seq 0", async () => {
    const { transport, history, connection } = setup();
    const messages = history.appendMany("st_a", 3, true);
    await connection.resume("st_a", undefined);
    expectContiguous(transport.seqsOf("st_a"), -1, 4);
    expect(transport.sent).toEqual(messages.map((m) => m.frame));
  });

  it("of a stream with nothing new sends nothing and then passes live events", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 3);
    await connection.resume("st_a", 3);
    expect(transport.sent).toEqual([]);
    const m4 = history.append("st_a", "chunk");
    connection.deliver(m4);
    expect(transport.seqsOf("st_a")).toEqual([4]);
  });

  it("reads history in pages until it has everything", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 1199, true);
    await connection.resume("st_a", undefined);
    expectContiguous(transport.seqsOf("st_a"), -1, 1200);
    expect(history.reads.length).toBeGreaterThanOrEqual(3);
  });

  it("holds live events from prepareResume on, so none is sent from the wrong place", async () => {
    const { transport, history, connection } = setup();
    const messages = history.appendMany("st_a", 4);
    connection.prepareResume("st_a", 1);
    // Before the ownership check finished, a live event arrives.
    const m5 = history.append("st_a", "chunk");
    connection.deliver(m5);
    expect(transport.sent).toEqual([]);
    await connection.resume("st_a", 1);
    expectContiguous(transport.seqsOf("st_a"), 1, 5);
    expect(messages).toHaveLength(5);
  });

  it("a second resume of the same stream on the same socket never repeats a seq", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 4);
    await connection.resume("st_a", undefined);
    await connection.resume("st_a", 1);
    await connection.resume("st_a", undefined);
    expectContiguous(transport.seqsOf("st_a"), -1, 4);
  });

  it("trimmed history (first stored seq past last+1) sends a snapshot, then the stream goes on", async () => {
    const { transport, history, counters, connection } = setup();
    history.appendMany("st_a", 20);
    history.trimBefore("st_a", 15);
    await connection.resume("st_a", 3);
    const frames = transport.framesOf("st_a");
    expect(frames).toEqual([{ type: "snapshot", streamId: "st_a", seq: 20, content: history.textAt("st_a") }]);
    expect(StreamEventSchema.safeParse(frames[0]).success).toBe(true);
    expect(counters.snapshots).toBe(1);
    const m21 = history.append("st_a", "chunk");
    const m22 = history.append("st_a", "done");
    connection.deliver(m21);
    connection.deliver(m22);
    expect(transport.seqsOf("st_a")).toEqual([20, 21, 22]);
    expect(transport.framesOf("st_a").at(-1)?.type).toBe("done");
  });

  it("expired history of an ended stream gives a snapshot of its whole text", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 5, true);
    const text = history.textAt("st_a");
    history.expire("st_a");
    await connection.resume("st_a", 2);
    const snapshot = transport.framesOf("st_a").find((frame) => frame.type === "snapshot");
    expect(snapshot).toMatchObject({ type: "snapshot", streamId: "st_a", content: text });
    expect(snapshot?.seq as number).toBeGreaterThan(2);
    expect(snapshot?.seq as number).toBeLessThanOrEqual(6);
  });

  it("a chunk written between the history read and the snapshot read is replayed as itself, not as a snapshot", async () => {
    const { transport, history, counters, connection } = setup();
    history.appendMany("st_a", 3);
    history.holdSnapshots();
    const resumed = connection.resume("st_a", 3); // nothing after 3 yet: the read is empty, the snapshot read follows
    const snapshot = await history.nextSnapshot();
    const m4 = history.append("st_a", "chunk"); // written now; Redis then runs the snapshot read
    snapshot.answer();
    connection.deliver(m4);
    await resumed;
    await settle();
    expect(transport.framesOf("st_a")).toEqual([JSON.parse(m4.frame)]);
    expect(counters.snapshots).toBe(0);
    expect(history.reads.map((read) => read.afterSeq)).toEqual([3, 3]);
  });

  it("held live events ahead of an empty read: history is read again and replayed, not sent as a snapshot", async () => {
    const { transport, history, counters, connection } = setup();
    history.appendMany("st_a", 3);
    history.hold();
    const resumed = connection.resume("st_a", 3);
    const read = await history.nextRead();
    const m4 = history.append("st_a", "chunk");
    const m5 = history.append("st_a", "chunk");
    connection.deliver(m5); // m4's live copy was not seen here; m5's is held
    read.answerWith([]); // the read ran before 4 was written
    const again = await history.nextRead();
    again.answer();
    await resumed;
    expectContiguous(transport.seqsOf("st_a"), 3, 5);
    expect(transport.framesOf("st_a").map((frame) => frame.type)).toEqual(["chunk", "chunk"]);
    expect(transport.sent).toEqual([m4.frame, m5.frame]);
    expect(counters.snapshots).toBe(0);
  });

  it("expired history of a running stream: the second read is empty too, so the text goes as a snapshot", async () => {
    const { transport, history, counters, connection } = setup();
    history.appendMany("st_a", 6);
    history.expire("st_a");
    await connection.resume("st_a", 2);
    expect(transport.framesOf("st_a")).toEqual([
      { type: "snapshot", streamId: "st_a", seq: 6, content: history.textAt("st_a") },
    ]);
    expect(counters.snapshots).toBe(1);
    expect(history.reads.map((read) => read.afterSeq)).toEqual([2, 2]);
  });

  it("of a queued stream (no event yet) sends nothing, then passes its start live", async () => {
    const { transport, history, counters, connection } = setup();
    await connection.resume("st_new", undefined);
    expect(transport.sent).toEqual([]);
    expect(counters.snapshots).toBe(0);
    connection.deliver(history.append("st_new", "start"));
    connection.deliver(history.append("st_new", "chunk"));
    expectContiguous(transport.seqsOf("st_new"), -1, 1);
  });
});

/**
 * docs/protocol.md §3: `done` is "always the last event of a stream", and a client resumes every stream that has not had
 * `done`. A snapshot whose seq covers the `done` event hides it, and the client never learns the stream ended.
 */
describe("ClientConnection: a snapshot never swallows done", () => {
  function expectEndsWithDone(transport: FakeTransport, streamId: string, after: number): void {
    const frames = transport.framesOf(streamId);
    const seqs = frames.map((frame) => frame.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    expect(seqs[0]).toBeGreaterThan(after);
    expect(frames.at(-1)).toMatchObject({ type: "done", streamId, finishReason: "stop" });
  }

  it("trimmed history whose newest event is done: the snapshot is followed by done", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 20, true); // done is seq 21
    history.trimBefore("st_a", 15);
    await connection.resume("st_a", 3);
    expectEndsWithDone(transport, "st_a", 3);
  });

  it("expired history of an ended stream: the snapshot is followed by done", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 5, true);
    history.expire("st_a");
    await connection.resume("st_a", 2);
    expectEndsWithDone(transport, "st_a", 2);
  });

  it("done appended between the history read and the snapshot read is still delivered", async () => {
    const { transport, history, connection } = setup();
    history.appendMany("st_a", 3);
    history.holdSnapshots();
    const resumed = connection.resume("st_a", 3); // nothing new: the read finds no events and asks for a snapshot
    const snapshot = await history.nextSnapshot();
    const done = history.append("st_a", "done"); // the stream ends now; Redis then runs the snapshot read
    snapshot.answer();
    connection.deliver(done); // the live copy arrives on the subscriber connection
    await resumed;
    await settle();
    expectEndsWithDone(transport, "st_a", 3);
  });
});

describe("ClientConnection slow consumer", () => {
  it("closes with 4409 once the send buffer passes its bound and sends nothing more", async () => {
    const { transport, history, counters, connection } = setup();
    const messages = history.appendMany("st_a", 5);
    connection.deliver(messages[0]!);
    connection.deliver(messages[1]!);
    transport.bufferedAmount = MAX_BUFFERED; // at the bound is still fine
    connection.deliver(messages[2]!);
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2]);
    transport.bufferedAmount = MAX_BUFFERED + 1;
    connection.deliver(messages[3]!);
    expect(transport.closes).toEqual([{ code: CloseCode.slowConsumer, reason: expect.any(String) }]);
    expect(CloseCode.slowConsumer).toBe(4409);
    expect(counters.slowConsumers).toBe(1);
    // Even if the buffer drains, the connection is finished: the client resumes on a new socket.
    transport.bufferedAmount = 0;
    transport.open = true;
    connection.deliver(messages[4]!);
    connection.deliver(messages[5]!);
    connection.sendControl({ type: "pong" });
    await connection.resume("st_b", undefined);
    await settle();
    expect(transport.seqsOf("st_a")).toEqual([0, 1, 2]);
    expect(transport.sent).toHaveLength(3);
    expect(transport.closes).toHaveLength(1);
  });

  it("stops a history replay at the bound", async () => {
    const { transport, history, counters, connection } = setup();
    history.appendMany("st_a", 50);
    const send = transport.send.bind(transport);
    transport.send = (frame: string) => {
      send(frame);
      transport.bufferedAmount += 100; // the client reads nothing
    };
    await connection.resume("st_a", undefined);
    expect(transport.closes.map((c) => c.code)).toEqual([4409]);
    expect(transport.sent.length).toBe(11); // 0..10 fit (bufferedAmount 1000 is not above the bound)
    expectContiguous(transport.seqsOf("st_a"), -1, 10);
    expect(counters.slowConsumers).toBe(1);
  });
});
