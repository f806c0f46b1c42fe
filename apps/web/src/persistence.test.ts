import { describe, expect, it } from "vitest";
import { MemoryStorage, Persistence, STORAGE_PREFIX } from "./persistence";
import { newStream } from "./stream-reducer";

describe("persistence", () => {
  it("keeps the token, conversations, open conversation and UI prefs", () => {
    const storage = new MemoryStorage();
    const p = new Persistence(storage);
    p.saveToken("tok_1");
    p.saveConversations([{ id: "conv_1", title: "Hi", createdAt: "2024-01-01", updatedAt: "2024-01-02" }]);
    p.saveActive("conv_1");
    p.saveUi({ panelOpen: true });
    const again = new Persistence(storage);
    expect(again.loadToken()).toBe("tok_1");
    expect(again.loadConversations()[0]?.id).toBe("conv_1");
    expect(again.loadActive()).toBe("conv_1");
    expect(again.loadUi()).toEqual({ panelOpen: true });
    again.saveActive(null);
    expect(again.loadActive()).toBeNull();
  });

  it("keeps only unfinished streams, with text and last seq together", () => {
    const p = new Persistence(new MemoryStorage());
    p.saveOpenStreams({
      a: newStream("a", {
        status: "streaming",
        lastSeq: 4,
        text: "four words so far",
        via: ["gateway-1"],
        aiNode: "ai-1",
      }),
      b: newStream("b"),
      c: newStream("c", { status: "complete", lastSeq: 9, text: "done" }),
      d: newStream("d", {
        status: "streaming",
        lastSeq: 2,
        held: [{ type: "chunk", streamId: "d", seq: 4, delta: "x" }],
      }),
    });
    const loaded = p.loadOpenStreams();
    expect(loaded.map((s) => s.streamId)).toEqual(["a", "b", "d"]);
    expect(loaded[0]).toMatchObject({ lastSeq: 4, text: "four words so far", via: ["gateway-1"], aiNode: "ai-1" });
    expect(loaded[2]?.held).toEqual([]);
    p.saveOpenStreams({});
    expect(p.loadOpenStreams()).toEqual([]);
  });

  it("drops what does not validate and survives a storage that throws", () => {
    const storage = new MemoryStorage();
    storage.setItem(`${STORAGE_PREFIX}openStreams`, JSON.stringify([{ streamId: 1 }]));
    storage.setItem(`${STORAGE_PREFIX}conversations`, "{not json");
    const p = new Persistence(storage);
    expect(p.loadOpenStreams()).toEqual([]);
    expect(p.loadConversations()).toEqual([]);
    const broken = new Persistence({
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("quota");
      },
      removeItem: () => undefined,
    });
    expect(broken.loadToken()).toBeUndefined();
    expect(() => broken.saveToken("x")).not.toThrow();
    expect(new Persistence(undefined).loadUi()).toEqual({ panelOpen: false });
  });

  it("clearSession forgets the session but keeps UI prefs", () => {
    const storage = new MemoryStorage();
    const p = new Persistence(storage);
    p.saveToken("t");
    p.saveActive("conv_1");
    p.saveUi({ panelOpen: true });
    p.clearSession();
    expect(p.loadToken()).toBeUndefined();
    expect(p.loadActive()).toBeNull();
    expect(p.loadUi().panelOpen).toBe(true);
  });
});
