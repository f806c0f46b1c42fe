import { keys } from "@chatgrid/broker";
import { type ChatAccepted, ChatRequestSchema, ErrorCode } from "@chatgrid/protocol";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import type { ApiDeps, ApiEnv } from "../http/context";
import { apiError } from "../http/errors";
import { readJson } from "../http/json-body";

/**
 * POST /api/chat: write the turn (user message, empty assistant message, queued stream), then dispatch it.
 * The stream id exists before dispatch, so a retried dispatch cannot start a second generation.
 */
export function chatRoutes(deps: ApiDeps, redis: Redis): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.post("/", async (c) => {
    const body = await readJson(c, ChatRequestSchema);
    if (body instanceof Response) return body;
    const sessionId = c.get("sessionId");
    const idemKey = body.clientMessageId ? keys.idempotency(sessionId, body.clientMessageId) : undefined;
    if (idemKey) {
      const earlier = await redis.get(idemKey);
      if (earlier) return c.json(JSON.parse(earlier) as ChatAccepted, 202);
    }
    if (body.conversationId && (await deps.conversations.ownerOf(body.conversationId)) !== sessionId) {
      return apiError(c, 404, ErrorCode.notFound, "no such conversation");
    }
    const turn = await deps.conversations.beginTurn(sessionId, body.message, body.conversationId);
    const accepted: ChatAccepted = {
      streamId: turn.streamId,
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
    };
    if (idemKey) {
      const ttl = deps.streams.options.retentionTtlMs;
      const claimed = await redis.set(idemKey, JSON.stringify(accepted), "PX", ttl, "NX");
      if (claimed !== "OK") {
        // The same request raced us and won: undo ours, answer with theirs.
        await deps.conversations.rollbackTurn(sessionId, turn);
        const earlier = await redis.get(idemKey);
        return c.json(earlier ? (JSON.parse(earlier) as ChatAccepted) : accepted, 202);
      }
    }
    deps.events.emit({
      type: "chat.requested",
      sessionId,
      streamId: turn.streamId,
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      newConversation: turn.newConversation,
      messageChars: body.message.length,
    });
    const dispatched = await deps.balancer.dispatch({ streamId: turn.streamId, attempt: 1 });
    if (!dispatched.ok) {
      await deps.conversations.rollbackTurn(sessionId, turn);
      if (idemKey) await redis.del(idemKey);
      deps.log.warn({ sessionId, streamId: turn.streamId, tried: dispatched.tried }, "no AI node accepted the stream");
      return apiError(c, 503, ErrorCode.noAiNode, `no AI node accepted the request (tried ${dispatched.tried})`);
    }
    deps.events.emit({
      type: "stream.dispatched",
      sessionId,
      streamId: turn.streamId,
      attempt: 1,
      aiNode: dispatched.node,
      tries: dispatched.tried,
    });
    deps.log.info({ sessionId, streamId: turn.streamId, aiNode: dispatched.node }, "chat dispatched");
    return c.json(accepted, 202);
  });
  return app;
}
