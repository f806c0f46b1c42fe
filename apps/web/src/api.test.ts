import { HISTORY_PAGE, type HistoryMessage } from "@chatgrid/protocol";
import { describe, expect, it } from "vitest";
import { Api, ApiError, MAX_HISTORY_PAGES } from "./api";

const at = "2024-01-01T00:00:00.000Z";
const message = (i: number): HistoryMessage => ({
  id: `msg_${i}`,
  role: i % 2 === 0 ? "user" : "assistant",
  content: `m${i}`,
  createdAt: at,
  status: "complete",
  ...(i % 2 === 1 ? { streamId: `st_${i}` } : {}),
});

/**
 * The server's paging as docs/protocol.md "History pages" describes it, over an in-memory list: the cursor is the
 * index of the oldest message of the page sent (here in the clear; to clients it is opaque).
 */
function pagingServer(
  list: HistoryMessage[],
  options: { beforeEachPage?: (page: number) => void; rateLimitFrom?: number } = {},
) {
  const requests: URL[] = [];
  const fetchFn = (async (input: string | URL | Request) => {
    const url = new URL(String(input), "http://chat.example");
    requests.push(url);
    options.beforeEachPage?.(requests.length);
    if (options.rateLimitFrom !== undefined && requests.length >= options.rateLimitFrom) {
      return new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), {
        status: 429,
        headers: { "retry-after": "1" },
      });
    }
    if (url.searchParams.get("conversationId") !== "conv_1") {
      return new Response(JSON.stringify({ error: { code: "not_found", message: "no such conversation" } }), {
        status: 404,
      });
    }
    const limit = Number(url.searchParams.get("limit"));
    const cursor = url.searchParams.get("cursor");
    const before = cursor === null ? list.length : Math.min(Number(cursor.slice(1)), list.length);
    const start = Math.max(0, before - limit);
    const body = {
      conversationId: "conv_1",
      messages: list.slice(start, before),
      ...(start > 0 ? { nextCursor: `c${start}` } : {}),
    };
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { requests, api: new Api("", () => "tok_1", fetchFn) };
}

describe("Api.history reads a whole conversation through pages", () => {
  it("keeps the newest pages when the session's rate runs out part-way (429), and fails on a first-page 429", async () => {
    const list = Array.from({ length: 900 }, (_, i) => message(i));
    const { api } = pagingServer(list, { rateLimitFrom: 3 });
    expect((await api.history("conv_1")).messages).toEqual(list.slice(500));
    const refused = pagingServer(list, { rateLimitFrom: 1 });
    await expect(refused.api.history("conv_1")).rejects.toBeInstanceOf(ApiError);
  });

  it("follows nextCursor from the newest page to the oldest and returns every message once, in order", async () => {
    const list = Array.from({ length: 450 }, (_, i) => message(i));
    const { api, requests } = pagingServer(list);
    const history = await api.history("conv_1");
    expect(history).toEqual({ conversationId: "conv_1", messages: list });
    expect(requests.map((r) => r.searchParams.get("cursor"))).toEqual([null, "c250", "c50"]);
    for (const request of requests) expect(request.searchParams.get("limit")).toBe(String(HISTORY_PAGE.max));
  });

  it("one request for a conversation that fits a page", async () => {
    const list = Array.from({ length: 12 }, (_, i) => message(i));
    const { api, requests } = pagingServer(list);
    expect((await api.history("conv_1")).messages).toEqual(list);
    expect(requests).toHaveLength(1);
  });

  it("a message seen on two pages (the list changed between reads) is kept once", async () => {
    const list = Array.from({ length: 300 }, (_, i) => message(i));
    // Between the first and second page, a turn rolled back near the start shifts the older entries by two.
    const { api } = pagingServer(list, {
      beforeEachPage: (page) => {
        if (page === 2) list.splice(10, 2);
      },
    });
    const history = await api.history("conv_1");
    const ids = history.messages.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(list.map((m) => m.id));
  });

  it("stops after MAX_HISTORY_PAGES pages, keeping the newest part", async () => {
    const list = Array.from({ length: (MAX_HISTORY_PAGES + 3) * HISTORY_PAGE.max }, (_, i) => message(i));
    const { api, requests } = pagingServer(list);
    const history = await api.history("conv_1");
    expect(requests).toHaveLength(MAX_HISTORY_PAGES);
    expect(history.messages).toEqual(list.slice(3 * HISTORY_PAGE.max));
  });

  it("an error of any page is the caller's (a 404 stays a 404)", async () => {
    const { api } = pagingServer([]);
    await expect(api.history("conv_gone")).rejects.toMatchObject({ status: 404, code: "not_found" });
    await expect(api.history("conv_gone")).rejects.toBeInstanceOf(ApiError);
  });
});
