import { describe, expect, it } from "vitest";
import { decodeChannelMessage, encodeChannelMessage } from "./channel-message";

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
