import type { StreamEvent } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import {
  applyStreamEvent,
  newStream,
  resumePoints,
  type StreamState,
  type StreamsState,
  statusOfDone,
  streamsReducer,
} from "./stream-reducer";

const S = "st_1";
const start: StreamEvent = {
  type: "start",
  streamId: S,
  conversationId: "conv_1",
  messageId: "msg_1",
  seq: 0,
  aiNode: "ai-2",
};
const chunk = (seq: number, delta: string, streamId = S): StreamEvent => ({ type: "chunk", streamId, seq, delta });
const done = (seq: number, extra: Partial<Extract<StreamEvent, { type: "done" }>> = {}): StreamEvent => ({
  type: "done",
  streamId: S,
  seq,
  finishReason: "stop",
  ...extra,
});

function run(events: StreamEvent[], node?: string, initial?: StreamState): StreamState {
  let state = initial;
  for (const event of events) state = applyStreamEvent(state, event, node);
  return state!;
}

describe("stream reducer", () => {
  it("builds the text from start, chunks and done", () => {
    const s = run([start, chunk(1, "Hello"), chunk(2, " world"), done(3)], "gateway-1");
    expect(s).toMatchObject({
      text: "Hello world",
      lastSeq: 3,
      status: "complete",
      aiNode: "ai-2",
      conversationId: "conv_1",
      messageId: "msg_1",
      via: ["gateway-1"],
    });
  });

  it("follows the AI node a stream moved to: reset and done name it after a takeover", () => {
    const restarted = run([
      start,
      chunk(1, "a"),
      { type: "reset", streamId: S, seq: 2, aiNode: "ai-3" },
      chunk(3, "b"),
    ]);
    expect(restarted).toMatchObject({ aiNode: "ai-3", text: "b", resets: 1 });
    const continued = run([start, chunk(1, "a"), done(2, { aiNode: "ai-1" })]);
    expect(continued).toMatchObject({ aiNode: "ai-1", status: "complete" });
    expect(run([start, done(1)]).aiNode).toBe("ai-2");
  });

  it("ignores duplicates (seq not above the last) and returns the same object", () => {
    const s = run([start, chunk(1, "a"), chunk(2, "b")]);
    expect(applyStreamEvent(s, chunk(2, "b"))).toBe(s);
    expect(applyStreamEvent(s, chunk(1, "a"))).toBe(s);
    expect(applyStreamEvent(s, start)).toBe(s);
    expect(run([chunk(1, "a"), chunk(2, "b"), done(3)], undefined, s).text).toBe("ab");
  });

  it("holds out-of-order events until the gap closes, then applies them in seq order", () => {
    const s1 = run([start, chunk(1, "a"), chunk(3, "c"), chunk(4, "d")]);
    expect(s1.text).toBe("a");
    expect(s1.lastSeq).toBe(1);
    expect(s1.held.map((e) => e.seq)).toEqual([3, 4]);
    const s2 = applyStreamEvent(s1, chunk(2, "b"));
    expect(s2.text).toBe("abcd");
    expect(s2.lastSeq).toBe(4);
    expect(s2.held).toEqual([]);
    // A held duplicate is not held twice.
    const s3 = run([chunk(6, "f"), chunk(6, "f")], undefined, s2);
    expect(s3.held).toHaveLength(1);
  });

  it("a done that arrives before the last chunk waits for it", () => {
    const s = run([start, chunk(1, "a"), done(3), chunk(2, "b")]);
    expect(s).toMatchObject({ text: "ab", status: "complete", lastSeq: 3 });
  });

  it("reset voids the text so far; chunks after it start afresh", () => {
    const s = run([start, chunk(1, "old "), chunk(2, "text"), { type: "reset", streamId: S, seq: 3 }, chunk(4, "new")]);
    expect(s).toMatchObject({ text: "new", resets: 1, lastSeq: 4, status: "streaming" });
  });

  it("snapshot replaces the text, closes a gap, and what is held beyond it follows", () => {
    const s1 = run([start, chunk(1, "a"), chunk(7, "!")]);
    const s2 = applyStreamEvent(s1, { type: "snapshot", streamId: S, seq: 6, content: "whole text" }, "gateway-3");
    expect(s2).toMatchObject({ text: "whole text!", lastSeq: 7, snapshots: 1, held: [], via: ["gateway-3"] });
    // A snapshot not above the last seq is a duplicate.
    expect(applyStreamEvent(s2, { type: "snapshot", streamId: S, seq: 7, content: "x" })).toBe(s2);
  });

  it("a snapshot of an ended stream, then its done, ends it (resume after history expiry)", () => {
    const s = run([{ type: "snapshot", streamId: S, seq: 9, content: "all" }, done(10)]);
    expect(s).toMatchObject({ text: "all", status: "complete", lastSeq: 10 });
  });

  it("done decides the status: stop/length complete, cancelled, provider error, interruption", () => {
    expect(run([start, done(1, { finishReason: "cancelled" })]).status).toBe("cancelled");
    expect(run([start, done(1, { finishReason: "length" })]).status).toBe("complete");
    const failed = run([start, done(1, { finishReason: "error", error: { code: "provider_error", message: "boom" } })]);
    expect(failed).toMatchObject({ status: "error", error: { code: "provider_error", message: "boom" } });
    expect(statusOfDone("error", { code: "stream_failed", message: "" })).toBe("interrupted");
    expect(statusOfDone("error", { code: "provider_incomplete", message: "" })).toBe("interrupted");
    expect(statusOfDone("error")).toBe("error");
  });

  it("nothing is applied after done", () => {
    const s = run([start, chunk(1, "a"), done(2)]);
    expect(applyStreamEvent(s, chunk(3, "late"))).toBe(s);
  });

  it("records each gateway that delivered events, in order, without repeats", () => {
    let s = run([start, chunk(1, "a")], "gateway-2");
    s = run([chunk(1, "a"), chunk(2, "b")], "gateway-1", s);
    s = run([chunk(3, "c")], "gateway-1", s);
    expect(s.via).toEqual(["gateway-2", "gateway-1"]);
    // A duplicate from another gateway does not count as delivery.
    expect(applyStreamEvent(s, chunk(3, "c"), "gateway-3").via).toEqual(["gateway-2", "gateway-1"]);
  });

  it("a page reload restores text and last seq, and the resume continues without repeating", () => {
    const before = run([start, chunk(1, "one "), chunk(2, "two ")], "gateway-1");
    const restored = newStream(S, { ...before, held: [] });
    const after = run([chunk(2, "two "), chunk(3, "three"), done(4)], "gateway-2", restored);
    expect(after.text).toBe("one two three");
    expect(after.via).toEqual(["gateway-1", "gateway-2"]);
  });
});

describe("streams reducer", () => {
  it("touches only the streams an event batch names; unchanged batches keep the state object", () => {
    const state = streamsReducer({}, { type: "events", node: "g", events: [start, chunk(1, "x"), chunk(0 + 1, "x")] });
    const other = { ...start, streamId: "st_2" };
    const next = streamsReducer(state, { type: "events", events: [other] });
    expect(next[S]).toBe(state[S]);
    expect(next.st_2?.status).toBe("streaming");
    expect(streamsReducer(next, { type: "events", events: [chunk(1, "x")] })).toBe(next);
  });

  it("register adds a waiting stream, or names the conversation of one that already started", () => {
    const waiting = streamsReducer({}, { type: "register", streamId: S, conversationId: "conv_1", messageId: "msg_1" });
    expect(waiting[S]).toMatchObject({ status: "waiting", lastSeq: -1 });
    const started = streamsReducer({}, { type: "events", events: [start] });
    expect(
      streamsReducer(started, { type: "register", streamId: S, conversationId: "conv_1", messageId: "msg_1" }),
    ).toBe(started);
  });

  it("restore adds only unknown streams; interrupt marks an open stream, never a finished one", () => {
    const live = streamsReducer({}, { type: "events", events: [start, chunk(1, "live")] });
    const restored = streamsReducer(live, {
      type: "restore",
      streams: [newStream(S, { text: "stale" }), newStream("st_9", { status: "streaming", lastSeq: 4, text: "kept" })],
    });
    expect(restored[S]?.text).toBe("live");
    expect(restored.st_9?.text).toBe("kept");
    const cut = streamsReducer(restored, {
      type: "interrupt",
      streamId: "st_9",
      error: { code: "stream_unknown", message: "" },
    });
    expect(cut.st_9?.status).toBe("interrupted");
    const finished = streamsReducer({}, { type: "events", events: [start, done(1)] });
    expect(streamsReducer(finished, { type: "interrupt", streamId: S, error: { code: "x", message: "" } })).toBe(
      finished,
    );
  });

  it("resume points name every open stream with its last seq (none before anything arrived)", () => {
    const state: StreamsState = {
      a: newStream("a", { status: "streaming", lastSeq: 7 }),
      b: newStream("b"),
      c: newStream("c", { status: "complete", lastSeq: 9 }),
      d: newStream("d", { status: "interrupted", lastSeq: 3 }),
    };
    expect(resumePoints(state)).toEqual([{ streamId: "a", afterSeq: 7 }, { streamId: "b" }]);
  });
});
