import { StreamEventSchema } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import { chunkFrame, frameParts } from "./frames";

/** What the append script does: prefix + seq + suffix. */
const frameAt = (head: Record<string, unknown>, tail: Record<string, unknown>, seq: number): string => {
  const { prefix, suffix } = frameParts(head, tail);
  return `${prefix}${seq}${suffix}`;
};

const streamId = "st_abc-DEF_123";

describe("frameParts", () => {
  it("start: valid JSON with seq after the head fields and aiNode after it", () => {
    const frame = frameAt(
      { type: "start", streamId, conversationId: "conv_1", messageId: "msg_1" },
      { aiNode: "ai-2" },
      0,
    );
    expect(frame).toBe(
      `{"type":"start","streamId":"${streamId}","conversationId":"conv_1","messageId":"msg_1","seq":0,"aiNode":"ai-2"}`,
    );
    expect(StreamEventSchema.parse(JSON.parse(frame))).toEqual({
      type: "start",
      streamId,
      conversationId: "conv_1",
      messageId: "msg_1",
      seq: 0,
      aiNode: "ai-2",
    });
  });

  it("chunk: deltas with quotes, backslashes, newlines, control and non-ASCII characters survive", () => {
    const deltas = [
      'say "hi"',
      "back\\slash",
      "line\nbreak\r\ttab",
      "\u0000\u001f",
      "ünï ✓ 🚀",
      "\u2028\u2029",
      "}",
      "",
    ];
    for (const [index, delta] of deltas.entries()) {
      const seq = index + 1;
      const frame = frameAt({ type: "chunk", streamId }, { delta }, seq);
      expect(StreamEventSchema.parse(JSON.parse(frame))).toEqual({ type: "chunk", streamId, seq, delta });
      expect(frame).not.toContain("\n");
      // The chunk fast path gives exactly the same bytes.
      expect(chunkFrame(streamId, seq, delta)).toBe(frame);
    }
    expect(chunkFrame('odd"id\\', 3, "x")).toBe(frameAt({ type: "chunk", streamId: 'odd"id\\' }, { delta: "x" }, 3));
  });

  it("reset: an empty tail closes the object", () => {
    const { suffix } = frameParts({ type: "reset", streamId }, {});
    expect(suffix).toBe("}");
    const frame = frameAt({ type: "reset", streamId }, {}, 7);
    expect(frame).toBe(`{"type":"reset","streamId":"${streamId}","seq":7}`);
    expect(StreamEventSchema.parse(JSON.parse(frame))).toEqual({ type: "reset", streamId, seq: 7 });
  });

  it("done: finish reason, error and usage in the tail", () => {
    const tail = {
      finishReason: "error",
      error: { code: "provider_error", message: 'upstream said "no"' },
      usage: { promptTokens: 12, completionTokens: 34 },
    };
    const frame = frameAt({ type: "done", streamId }, tail, 42);
    expect(frame.startsWith('{"type":"done"')).toBe(true);
    expect(StreamEventSchema.parse(JSON.parse(frame))).toEqual({ type: "done", streamId, seq: 42, ...tail });
    const plain = frameAt({ type: "done", streamId }, { finishReason: "stop" }, 3);
    expect(JSON.parse(plain)).toEqual({ type: "done", streamId, seq: 3, finishReason: "stop" });
  });

  it("large seqs stay valid JSON numbers", () => {
    const frame = frameAt({ type: "chunk", streamId }, { delta: "x" }, 123_456_789);
    expect(JSON.parse(frame)).toMatchObject({ seq: 123_456_789 });
  });
});
