import { describe, expect, it } from "vitest";
import { explainChunkRefusal, RefusalCode } from "./chunk-refusal";

const chunk = { attempt: 2, seq: 7, expectedLength: 5, length: 1 };
const running = { status: "running", attempt: "2" };

describe("explainChunkRefusal", () => {
  it("a stream without meta is unknown, whatever the chunk", () => {
    expect(explainChunkRefusal({ status: null, attempt: null }, chunk)).toBe(RefusalCode.unknown);
  });

  it("another attempt owns the stream: fenced, even when the length would read as a retry", () => {
    expect(explainChunkRefusal({ status: "running", attempt: "3" }, chunk)).toBe(RefusalCode.fenced);
    expect(explainChunkRefusal({ status: "running", attempt: "3" }, { ...chunk, length: 6 })).toBe(RefusalCode.fenced);
    expect(explainChunkRefusal({ status: "running", attempt: null }, chunk)).toBe(RefusalCode.fenced);
  });

  it("one past the expected length is the chunk already there: its seq, also after done", () => {
    expect(explainChunkRefusal(running, { ...chunk, length: 6 })).toBe(7);
    expect(explainChunkRefusal({ status: "done", attempt: "2" }, { ...chunk, length: 6 })).toBe(7);
  });

  it("otherwise done, or out of step with the list", () => {
    expect(explainChunkRefusal({ status: "done", attempt: "2" }, chunk)).toBe(RefusalCode.done);
    expect(explainChunkRefusal(running, chunk)).toBe(RefusalCode.outOfStep);
    expect(explainChunkRefusal(running, { ...chunk, length: 4 })).toBe(RefusalCode.outOfStep);
  });
});
