import {
  type CancelResponse,
  CancelResponseSchema,
  type ChatAccepted,
  ChatAcceptedSchema,
  type ChatRequest,
  type ConversationsResponse,
  ConversationsResponseSchema,
  ErrorBodySchema,
  HISTORY_PAGE,
  type HistoryResponse,
  HistoryResponseSchema,
} from "@chatgrid/protocol";
import { timeoutSignal } from "./timeout-signal";

/** A REST call that failed: HTTP status (0: no answer at all), the protocol's error code, and Retry-After. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** Worth trying again as it is (network, 429, 5xx), as opposed to a request that is wrong. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

interface SafeParser<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

const REQUEST_TIMEOUT_MS = 15_000;
/** Pages of HISTORY_PAGE.max messages read at most for one conversation (10 000 messages). */
export const MAX_HISTORY_PAGES = 20;

/** REST over fetch (docs/protocol.md §2). Every response body is validated with the protocol's schemas. */
export class Api {
  constructor(
    private readonly base: string,
    private readonly token: () => string | undefined,
    private readonly fetchFn: typeof fetch = (...args) => fetch(...args),
  ) {}

  private async call<T>(method: string, path: string, schema: SafeParser<T>, body?: unknown): Promise<T> {
    const token = this.token();
    let response: Response;
    try {
      response = await this.fetchFn(`${this.base}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: timeoutSignal(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ApiError(0, "network", `the server could not be reached (${(error as Error).message})`);
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const parsed = ErrorBodySchema.safeParse(json);
      const retryAfter = Number(response.headers.get("retry-after"));
      throw new ApiError(
        response.status,
        parsed.success ? parsed.data.error.code : `http_${response.status}`,
        parsed.success ? parsed.data.error.message : `HTTP ${response.status}`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(response.status, "bad_response", `unexpected answer to ${method} ${path}`);
    return parsed.data;
  }

  chat(request: ChatRequest): Promise<ChatAccepted> {
    return this.call("POST", "/api/chat", ChatAcceptedSchema, request);
  }

  cancel(streamId: string): Promise<CancelResponse> {
    return this.call("POST", "/api/cancel", CancelResponseSchema, { streamId });
  }

  /** One page of a conversation: the newest messages, or with `cursor` (a page's nextCursor) the ones before. */
  historyPage(conversationId: string, cursor?: string): Promise<HistoryResponse> {
    const query = new URLSearchParams({ conversationId, limit: String(HISTORY_PAGE.max) });
    if (cursor) query.set("cursor", cursor);
    return this.call("GET", `/api/history?${query}`, HistoryResponseSchema);
  }

  /**
   * A whole conversation, read page by page from the newest (docs/protocol.md "History pages"), oldest first.
   * A message seen on two pages (the list shifted between reads) is kept once. Past MAX_HISTORY_PAGES the oldest
   * part is left out (20 pages of 200 stay within a session's request burst), so a huge conversation cannot make
   * the page loop without end; a 429 after the first page also ends it with what was read.
   */
  async history(conversationId: string): Promise<HistoryResponse> {
    const pages: HistoryResponse["messages"][] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
      let response: HistoryResponse;
      try {
        response = await this.historyPage(conversationId, cursor);
      } catch (error) {
        // Over the session's rate after the newest pages: show what was read rather than nothing.
        if (page > 0 && error instanceof ApiError && error.status === 429) break;
        throw error;
      }
      pages.unshift(response.messages);
      if (!response.nextCursor || response.nextCursor === cursor) break;
      cursor = response.nextCursor;
    }
    const seen = new Set<string>();
    const messages = pages.flat().filter((m) => !seen.has(m.id) && seen.add(m.id));
    return { conversationId, messages };
  }

  conversations(): Promise<ConversationsResponse> {
    return this.call("GET", "/api/conversations", ConversationsResponseSchema);
  }
}
