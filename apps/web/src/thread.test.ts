import type { HistoryMessage } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import { newStream } from "./stream-reducer";
import { type AssistantItem, answerView, type ChatItem, mergeHistory, promptOf } from "./thread";

const at = "2024-01-01T00:00:00.000Z";
const h = (id: string, role: "user" | "assistant", content: string, extra: Partial<HistoryMessage> = {}) =>
  ({ id, role, content, createdAt: at, status: "complete", ...extra }) as HistoryMessage;

describe("thread", () => {
  it("history replaces the items; unsent messages and turns newer than the history stay", () => {
    const local: ChatItem[] = [
      { kind: "user", id: "local_1", content: "old q", createdAt: at, local: true },
      {
        kind: "assistant",
        id: "msg_a1",
        streamId: "st_1",
        content: "",
        status: "streaming",
        createdAt: at,
        local: true,
      },
      { kind: "user", id: "local_2", content: "racing q", createdAt: at, local: true },
      {
        kind: "assistant",
        id: "msg_a2",
        streamId: "st_2",
        content: "",
        status: "streaming",
        createdAt: at,
        local: true,
      },
      { kind: "user", id: "local_3", content: "failed q", createdAt: at, send: "failed", local: true },
    ];
    const merged = mergeHistory(
      { id: "conv_1", items: local, load: "loading" },
      [h("msg_u1", "user", "old q"), h("msg_a1", "assistant", "old answer", { streamId: "st_1" })],
      "conv_1",
    );
    expect(merged.load).toBe("loaded");
    expect(merged.items.map((i) => i.id)).toEqual(["msg_u1", "msg_a1", "local_2", "msg_a2", "local_3"]);
  });

  it("an answer shows its live stream when the page has one, else what history said", () => {
    const item: AssistantItem = {
      kind: "assistant",
      id: "m",
      streamId: "s",
      content: "stored",
      status: "cancelled",
      createdAt: at,
    };
    expect(answerView(item, undefined)).toEqual({ text: "stored", status: "cancelled" });
    const live = newStream("s", { status: "streaming", lastSeq: 3, text: "live text" });
    expect(answerView(item, live)).toMatchObject({ text: "live text", status: "streaming" });
    // Restored from history, replay not there yet: the stored text is shown meanwhile.
    expect(answerView(item, newStream("s", { status: "streaming" })).text).toBe("stored");
    const failed = newStream("s", {
      status: "error",
      lastSeq: 4,
      text: "x",
      error: { code: "provider_error", message: "boom" },
    });
    expect(answerView(item, failed)).toMatchObject({
      status: "error",
      errorCode: "provider_error",
      errorMessage: "boom",
    });
  });

  it("finds the question an answer replied to", () => {
    const items: ChatItem[] = [
      { kind: "user", id: "u1", content: "first", createdAt: at },
      { kind: "assistant", id: "a1", content: "", status: "complete", createdAt: at },
      { kind: "user", id: "u2", content: "second", createdAt: at },
      { kind: "assistant", id: "a2", content: "", status: "error", createdAt: at },
    ];
    expect(promptOf(items, "a2")).toBe("second");
    expect(promptOf(items, "a1")).toBe("first");
    expect(promptOf(items, "nope")).toBeUndefined();
  });
});
