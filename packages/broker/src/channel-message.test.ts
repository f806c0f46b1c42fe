import { StreamEventSchema } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import {
  type ChannelDropReason,
  type ChannelMessage,
  checkChannelFrame,
  decodeChannelMessage,
  encodeChannelMessage,
  isChunkAsWritten,
  MAX_CHANNEL_FRAME_CHARS,
} from "./channel-message";
import { chunkFrame, frameParts } from "./frames";

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

  it("recognises every chunk as chunkFrame writes it by its bytes, whatever its delta", () => {
    const deltas = [
      "",
      "x",
      ' the quick "brown" fox\\',
      "\n\r\t\b\f\u0000\u001f\u007f",
      "</script><img src=x>",
      "é漢字🙂",
      "\ud800 lone \udfff surrogates",
      "\u2028\u2029",
      '"}',
      "\\u0041",
      Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(""),
      "y".repeat(10_000),
    ];
    for (const [streamId, seq] of [
      ["st_a", 1],
      ["st_b-C_9", 17],
      ["s", 123_456_789_012_345],
    ] as const) {
      for (const delta of deltas) {
        const frame = chunkFrame(streamId, seq, delta);
        expect(isChunkAsWritten(frame, streamId, seq), frame.slice(0, 80)).toBe(true);
        expect(checkChannelFrame(message(streamId, seq, frame)), frame.slice(0, 80)).toBeUndefined();
        // The header decides: another stream's or another seq's chunk is not recognised (the general check refuses it).
        expect(isChunkAsWritten(frame, `${streamId}x`, seq)).toBe(false);
        expect(isChunkAsWritten(frame, streamId, seq + 1)).toBe(false);
        expect(isChunkAsWritten(frame, streamId, seq * 10)).toBe(false);
      }
    }
    // A chunk too long for the shortcut still passes, by the general check.
    const long = chunkFrame("st_a", 1, "z".repeat(20_000));
    expect(isChunkAsWritten(long, "st_a", 1)).toBe(false);
    expect(checkChannelFrame(message("st_a", 1, long))).toBeUndefined();
  });

  it("recognises no frame that the general check would refuse (mutations of real chunks)", () => {
    // Every frame the shortcut accepts must parse to exactly a chunk of the header's stream and seq with a string
    // delta: the shortcut may only be narrower than the general check, never wider.
    const isExactChunk = (frame: string, streamId: string, seq: number): boolean => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(frame);
      } catch {
        return false;
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return false;
      const event = parsed as Record<string, unknown>;
      return (
        Object.keys(event).join(",") === "type,streamId,seq,delta" &&
        event.type === "chunk" &&
        event.streamId === streamId &&
        event.seq === seq &&
        typeof event.delta === "string"
      );
    };
    // A fixed-seed generator, so a failure reproduces.
    let state = 0x2545f491;
    const random = (n: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const alphabet = ['"', "\\", "}", "{", ",", ":", "u", "0", "a", "F", "n", "\u0000", "\u001f", " ", "\ud83d", "é"];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const streamId = "st_a";
      const seq = 1 + random(3);
      let frame = chunkFrame(streamId, seq, ["x", 'a"b', "c\\d", "\n", "\u00e9"][random(5)]!);
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(frame.length + 1);
        const piece = alphabet[random(alphabet.length)]!;
        const kind = random(3);
        frame =
          kind === 0
            ? frame.slice(0, at) + piece + frame.slice(at)
            : kind === 1
              ? frame.slice(0, at) + frame.slice(at + 1)
              : frame.slice(0, at) + piece + frame.slice(at + 1);
      }
      if (!isChunkAsWritten(frame, streamId, seq)) continue;
      accepted++;
      expect(isExactChunk(frame, streamId, seq), frame).toBe(true);
      expect(checkChannelFrame(message(streamId, seq, frame)), frame).toBeUndefined();
    }
    // Some mutations keep a valid chunk (inside the delta): the property was tried, not vacuous.
    expect(accepted).toBeGreaterThan(200);
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
    // The general check, for any frame not written as chunkFrame writes it (the same chunk with a space).
    const spaced = message(streamId, 42, chunk.frame.replace(',"delta"', ', "delta"'));
    expect(checkChannelFrame(spaced)).toBeUndefined();
    const general = time(() => checkChannelFrame(spaced));
    const parseOnly = time(() => JSON.parse(chunk.frame));
    const zod = time(() => StreamEventSchema.safeParse(JSON.parse(chunk.frame)));
    console.log(
      `checkChannelFrame: ${check.toFixed(0)} ns/message for a chunk as written, ${general.toFixed(0)} ns by the general check; JSON.parse alone ${parseOnly.toFixed(0)} ns; JSON.parse + zod StreamEventSchema ${zod.toFixed(0)} ns`,
    );
    // The bounds are generous for loaded CI machines; they catch a per-message cost of another order (figures of the
    // dev box in docs/benchmarks.md "Changes, before and after", 12).
    expect(check).toBeLessThan(5_000);
    expect(general).toBeLessThan(5_000);
  });
});
