import { type ConversationsResponse, ErrorCode, HistoryQuerySchema, type HistoryResponse } from "@chatgrid/protocol";
import { Hono } from "hono";
import type { ApiDeps, ApiEnv } from "../http/context";
import { apiError } from "../http/errors";

/** GET /api/history and GET /api/conversations: read-only views of the session's conversations. */
export function historyRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/history", async (c) => {
    const query = HistoryQuerySchema.safeParse({ conversationId: c.req.query("conversationId") });
    if (!query.success) return apiError(c, 400, ErrorCode.badRequest, "conversationId: a conversation id is required");
    const { conversationId } = query.data;
    if ((await deps.conversations.ownerOf(conversationId)) !== c.get("sessionId")) {
      return apiError(c, 404, ErrorCode.notFound, "no such conversation");
    }
    const body: HistoryResponse = { conversationId, messages: await deps.conversations.history(conversationId) };
    return c.json(body, 200);
  });
  app.get("/conversations", async (c) => {
    const body: ConversationsResponse = { conversations: await deps.conversations.list(c.get("sessionId")) };
    return c.json(body, 200);
  });
  return app;
}
