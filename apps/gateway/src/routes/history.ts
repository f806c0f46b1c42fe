import { decodeHistoryCursor } from "@chatgrid/broker";
import {
  type ConversationsResponse,
  ErrorCode,
  HISTORY_PAGE,
  HistoryQuerySchema,
  type HistoryResponse,
} from "@chatgrid/protocol";
import { Hono } from "hono";
import type { ApiDeps, ApiEnv } from "../http/context";
import { apiError } from "../http/errors";

/** What a bad query field is told, by field (the schema's own messages are for developers, not users). */
const FIELD_HINTS: Record<string, string> = {
  conversationId: "a conversation id is required",
  limit: `an integer from 1 to ${HISTORY_PAGE.max}`,
  cursor: "a cursor from a previous page's nextCursor",
};

/** GET /api/history and GET /api/conversations: read-only views of the session's conversations. */
export function historyRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/history", async (c) => {
    const query = HistoryQuerySchema.safeParse({
      conversationId: c.req.query("conversationId"),
      limit: c.req.query("limit"),
      cursor: c.req.query("cursor"),
    });
    if (!query.success) {
      const field = String(query.error.issues[0]?.path[0] ?? "conversationId");
      return apiError(c, 400, ErrorCode.badRequest, `${field}: ${FIELD_HINTS[field] ?? "invalid"}`);
    }
    const { conversationId, limit, cursor } = query.data;
    const before = cursor === undefined ? undefined : decodeHistoryCursor(cursor);
    if (cursor !== undefined && before === undefined) {
      return apiError(c, 400, ErrorCode.badRequest, `cursor: ${FIELD_HINTS.cursor}`);
    }
    if ((await deps.conversations.ownerOf(conversationId)) !== c.get("sessionId")) {
      return apiError(c, 404, ErrorCode.notFound, "no such conversation");
    }
    // A page at a time (docs/protocol.md "History pages"): the newest first, then older ones by cursor.
    const page = await deps.conversations.historyPage(conversationId, {
      limit,
      ...(before === undefined ? {} : { before }),
    });
    const body: HistoryResponse = {
      conversationId,
      messages: page.messages,
      ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
    };
    return c.json(body, 200);
  });
  app.get("/conversations", async (c) => {
    const body: ConversationsResponse = { conversations: await deps.conversations.list(c.get("sessionId")) };
    return c.json(body, 200);
  });
  return app;
}
