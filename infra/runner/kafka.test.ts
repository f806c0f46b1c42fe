import { describe, expect, it } from "vitest";
import { kafkaClusterId } from "./kafka";

describe("kafkaClusterId", () => {
  it("draws again when the id would start with '-' (the storage tool would read it as an option)", () => {
    // 0xf8 is 111110xx: its first base64url digit is 62, "-".
    const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0x01)];
    const id = kafkaClusterId(() => draws.shift()!);
    expect(Buffer.alloc(16, 0xf8).toString("base64url").startsWith("-")).toBe(true);
    expect(id).toBe(Buffer.alloc(16, 0x01).toString("base64url"));
    expect(draws).toEqual([]);
  });

  it("is 16 random bytes in base64url, 22 digits, none starting with '-'", () => {
    const ids = Array.from({ length: 2000 }, () => kafkaClusterId());
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
      expect(Buffer.from(id, "base64url")).toHaveLength(16);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });
});
