import { StreamEventSchema } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import {
  type ChannelDropReason,
  type ChannelMessage,
  checkChannelFrame,
  decodeChannelMessage,
  encodeChannelMessage,
  MAX_CHANNEL_FRAME_CHARS,
} from "./channel-message";
import { frameParts } from "./frames";

describe("channel messages", () => {
  it("round-trip streamId, seq and the frame bytes as they were", () => {
    const cases: [string, number, string][] = [
      ["st_a", 0, '{"type":"start","streamId":"st_a","seq":0}'],
      ["st_b-C_9", 17, '{"type":"chunk","streamId":"st_b-C_9","seq":17,"delta":"a\\nb"}'],
      ["st_c", 123_456, "frame with\nraw newlines\nkept"],
      ["st_d", 5, ""],
    ];
    for (const [streamId, seq, frame] of cases) {
      const payload = encodeChannelMessage(streamId, seq, frame);
      expect(payload).toBe(`${streamId}\n${seq}\n${frame}`);
      expect(decodeChannelMessage(payload)).toEqual({ streamId, seq, frame });
    }
  });

  it("returns undefined for malformed payloads without throwing", () => {
    const malformed = [
      "",
      "no newline at all",
      "\n1\n{}", // empty stream id
      "st_a\n1", // no second newline
      "st_a\n", // nothing after the stream id
      "st_a\nx\n{}",
      "st_a\n-1\n{}",
      "st_a\n1.5\n{}",
      "st_a\nNaN\n{}",
      "st_a\nInfinity\n{}",
      "st_a\n1e400\n{}",
    ];
    for (const payload of malformed) {
      expect(() => decodeChannelMessage(payload), JSON.stringify(payload)).not.toThrow();
      expect(decodeChannelMessage(payload), JSON.stringify(payload)).toBeUndefined();
    }
  });

  it("an empty or blank seq field is malformed, not seq 0", () => {
    // Number("") and Number(" ") are 0: a header without a seq must not pass as the stream's `start`.
    for (const payload of ["st_a\n\n{}", "st_a\n \n{}"]) {
      expect(decodeChannelMessage(payload), JSON.stringify(payload)).toBeUndefined();
    }
  });
});

/** A frame exactly as the append script builds it (prefix .. seq .. suffix, frames.ts). */
function built(head: Record<string, unknown>, tail: Record<string, unknown>, seq: number): string {
  const { prefix, suffix } = frameParts(head, tail);
  return `${prefix}${seq}${suffix}`;
}

const message = (streamId: string, seq: number, frame: string): ChannelMessage => ({ streamId, seq, frame });

describe("checkChannelFrame", () => {
  const s = "st_a";
  const good: ChannelMessage[] = [
    message(
      s,
      0,
      built({ type: "start", streamId: s, conversationId: "conv_1", messageId: "msg_1" }, { aiNode: "ai-1" }, 0),
    ),
    message(s, 1, built({ type: "chunk", streamId: s }, { delta: 'Hello "world"\n' }, 1)),
    message(s, 2, built({ type: "chunk", streamId: s }, { delta: "" }, 2)),
    message(s, 3, built({ type: "reset", streamId: s }, {}, 3)),
    message(s, 4, built({ type: "reset", streamId: s }, { aiNode: "ai-2" }, 4)),
    message(s, 5, built({ type: "done", streamId: s }, { finishReason: "stop" }, 5)),
    message(
      s,
      6,
      built(
        { type: "done", streamId: s },
        {
          finishReason: "error",
          error: { code: "provider_error", message: "boom" },
          usage: { promptTokens: 3, completionTokens: 4 },
          aiNode: "ai-1",
        },
        6,
      ),
    ),
    message(s, 0, built({ type: "done", streamId: s }, { finishReason: "cancelled" }, 0)),
  ];

  it("passes every event the append script publishes (the same ones the protocol schema accepts)", () => {
    for (const m of good) {
      expect(checkChannelFrame(m), m.frame).toBeUndefined();
      expect(StreamEventSchema.safeParse(JSON.parse(m.frame)).success, m.frame).toBe(true);
    }
  });

  it("drops hostile or malformed frames, each with its reason", () => {
    const chunk = (seq: number, tail: Record<string, unknown> = { delta: "x" }, streamId = s) =>
      built({ type: "chunk", streamId }, tail, seq);
    const cases: [ChannelMessage, ChannelDropReason][] = [
      [message(s, 1, "not json"), "json"],
      [message(s, 1, '{"type":"chunk","streamId":"st_a","seq":1,"delta":"x"'), "json"],
      [message(s, 1, "[1,2]"), "json"],
      [message(s, 1, "null"), "json"],
      [message(s, 1, '"a string"'), "json"],
      [message(s, 1, "<script>alert(1)</script>"), "json"],
      [message(s, 1, '{"type":"welcome","sessionId":"sess_x","token":"t","node":"g"}'), "type"],
      [message(s, 1, '{"type":"error","code":"x","message":"click http://evil"}'), "type"],
      [message(s, 1, '{"type":"snapshot","streamId":"st_a","seq":1,"content":"fake"}'), "type"],
      [message(s, 1, '{"streamId":"st_a","seq":1,"delta":"x"}'), "type"],
      [message(s, 1, '{"streamId":"st_a","type":"chunk","seq":1,"delta":"x"}'), "type"], // not as the script writes
      [message(s, 1, '{"type":"chunk","type":"done","streamId":"st_a","seq":1,"finishReason":"stop"}'), "type"],
      [message(s, 1, '{ "type":"done","streamId":"st_a","seq":1,"finishReason":"stop"}'), "type"],
      [message(s, 1, chunk(1, { delta: "x" }, "st_other")), "stream"],
      [message("st_a<img>", 1, chunk(1, { delta: "x" }, "st_a<img>")), "stream"],
      [message(s, 2, chunk(1)), "seq"],
      [message(s, 1, '{"type":"chunk","streamId":"st_a","seq":"1","delta":"x"}'), "seq"],
      [message(s, 1, chunk(1, {})), "fields"],
      [message(s, 1, chunk(1, { delta: 5 })), "fields"],
      [message(s, 0, chunk(0)), "fields"],
      [message(s, 0, built({ type: "start", streamId: s }, { aiNode: "ai-1" }, 0)), "fields"],
      [
        message(s, 3, built({ type: "start", streamId: s, conversationId: "c", messageId: "m" }, { aiNode: "a" }, 3)),
        "fields",
      ],
      [message(s, 0, built({ type: "reset", streamId: s }, {}, 0)), "fields"],
      [message(s, 1, built({ type: "reset", streamId: s }, { aiNode: 1 }, 1)), "fields"],
      [message(s, 1, built({ type: "done", streamId: s }, {}, 1)), "fields"],
      [message(s, 1, built({ type: "done", streamId: s }, { finishReason: "pwned" }, 1)), "fields"],
      [message(s, 1, built({ type: "done", streamId: s }, { finishReason: "error", error: "x" }, 1)), "fields"],
      [
        message(s, 1, built({ type: "done", streamId: s }, { finishReason: "stop", usage: { promptTokens: "1" } }, 1)),
        "fields",
      ],
      [message(s, 1, chunk(1, { delta: "x".repeat(MAX_CHANNEL_FRAME_CHARS) })), "size"],
    ];
    for (const [m, reason] of cases) {
      expect(() => checkChannelFrame(m), m.frame.slice(0, 80)).not.toThrow();
      expect(checkChannelFrame(m), m.frame.slice(0, 80)).toBe(reason);
    }
  });

  it("costs about a JSON.parse per message (micro-benchmark of the hot path, printed)", () => {
    // A typical chunk: a few tokens coalesced over COALESCE_MS (docs/redis.md).
    const streamId = "st_9f8e7d6c5b4a3210";
    const chunk = message(streamId, 42, built({ type: "chunk", streamId }, { delta: " the quick brown fox" }, 42));
    expect(checkChannelFrame(chunk)).toBeUndefined();
    const n = 100_000;
    /** ns per call: the best of 5 rounds after a warm-up, so a busy machine shows less noise. */
    const time = (fn: () => unknown): number => {
      for (let i = 0; i < 20_000; i++) fn();
      let best = Number.POSITIVE_INFINITY;
      for (let round = 0; round < 5; round++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < n; i++) fn();
        best = Math.min(best, Number(process.hrtime.bigint() - start) / n);
      }
      return best;
    };
    const check = time(() => checkChannelFrame(chunk));
    const parseOnly = time(() => JSON.parse(chunk.frame));
    const zod = time(() => StreamEventSchema.safeParse(JSON.parse(chunk.frame)));
    console.log(
      `checkChannelFrame: ${check.toFixed(0)} ns/message; JSON.parse alone ${parseOnly.toFixed(0)} ns; JSON.parse + zod StreamEventSchema ${zod.toFixed(0)} ns`,
    );
    // Measured on the 2-core dev box (tsx, Node 20): ~420 ns vs ~310 ns for JSON.parse alone and ~650-900 ns with
    // zod. The bound is generous for loaded CI machines; it catches a per-message cost of another order.
    expect(check).toBeLessThan(5_000);
  });
});
