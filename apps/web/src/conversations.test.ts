import { describe, expect, it } from "vitest";
import { deriveTitle, isDraft, mergeConversations, sortConversations, upsertConversation } from "./conversations";

const conv = (id: string, updatedAt: string, createdAt = "2024-01-01T00:00:00.000Z") => ({
  id,
  title: id,
  createdAt,
  updatedAt,
});

describe("titles", () => {
  it("are the first non-empty line of the first message, whitespace collapsed, at most 80 characters", () => {
    expect(deriveTitle("Hello there\nsecond line")).toBe("Hello there");
    expect(deriveTitle("\n\n   spaced    out  \nx")).toBe("spaced out");
    expect(deriveTitle("   ")).toBe("New chat");
    const long = deriveTitle("x".repeat(200));
    expect(long).toHaveLength(80);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("conversation list", () => {
  it("is sorted newest first", () => {
    const sorted = sortConversations([conv("a", "2024-01-01"), conv("b", "2024-03-01"), conv("c", "2024-02-01")]);
    expect(sorted.map((c) => c.id)).toEqual(["b", "c", "a"]);
  });

  it("merges the server's list with drafts and very recent local conversations; drops expired ones", () => {
    const now = Date.parse("2024-05-01T12:00:00.000Z");
    const local = [
      conv("draft_1", "2024-05-01T12:00:00.000Z", "2024-05-01T12:00:00.000Z"),
      conv("conv_new", "2024-05-01T11:59:50.000Z", "2024-05-01T11:59:50.000Z"),
      conv("conv_gone", "2024-04-01T00:00:00.000Z"),
      conv("conv_a", "2024-05-01T11:00:00.000Z"),
    ];
    const server = [conv("conv_a", "2024-05-01T10:00:00.000Z"), conv("conv_b", "2024-04-30T00:00:00.000Z")];
    const merged = mergeConversations(local, server, now);
    expect(merged.map((c) => c.id)).toEqual(["draft_1", "conv_new", "conv_a", "conv_b"]);
    // The local, newer activity time wins over the server's.
    expect(merged.find((c) => c.id === "conv_a")?.updatedAt).toBe("2024-05-01T11:00:00.000Z");
  });

  it("upsert replaces a draft by its server conversation", () => {
    const list = [conv("draft_1", "2024-01-02"), conv("conv_x", "2024-01-01")];
    const next = upsertConversation(list, conv("conv_y", "2024-01-03"), "draft_1");
    expect(next.map((c) => c.id)).toEqual(["conv_y", "conv_x"]);
    expect(isDraft("draft_1")).toBe(true);
    expect(isDraft("conv_1")).toBe(false);
  });
});
