import { createHash } from "node:crypto";
import { type AdmitDecision, keys, newId, type RateCall, type Turn } from "@chatgrid/broker";
import {
  type ChatAccepted,
  ChatAcceptedSchema,
  type ChatRequest,
  ChatRequestSchema,
  ErrorCode,
} from "@chatgrid/protocol";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import { z } from "zod";
import { refuseSessionRate } from "../http/auth";
import type { ApiDeps, ApiEnv } from "../http/context";
import { apiError } from "../http/errors";
import { readJson } from "../http/json-body";
import { refuse } from "../http/refuse";

/** What `cg:idem:…` holds: the 202 body, and a fingerprint of the request it answered. */
const IdempotencyRecordSchema = z.object({ accepted: ChatAcceptedSchema, fingerprint: z.string() });

/** The same message to the same conversation (or to a new one) has the same fingerprint. */
const acceptedOf = (turn: Turn): ChatAccepted => ({
  streamId: turn.streamId,
  conversationId: turn.conversationId,
  messageId: turn.assistantMessageId,
});

const fingerprintOf = (body: ChatRequest): string =>
  createHash("sha256")
    .update(`${body.conversationId ?? ""}\n${body.message}`)
    .digest("base64url");

type Earlier = { accepted: ChatAccepted } | { conflict: true } | undefined;

function readRecord(raw: string | null, fingerprint: string): Earlier {
  if (!raw) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const record = IdempotencyRecordSchema.safeParse(json);
  if (!record.success) return undefined;
  return record.data.fingerprint === fingerprint ? { accepted: record.data.accepted } : { conflict: true };
}

/**
 * POST /api/chat: write the turn (user message, empty assistant message, queued stream), then dispatch it.
 * The stream id exists before dispatch, so a retried dispatch cannot start a second generation. Before anything is
 * written the stream takes a concurrency slot of its session and of its address (docs/security.md).
 */
export function chatRoutes(deps: ApiDeps, redis: Redis): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.post("/", async (c) => {
    const sessionId = c.get("sessionId");
    const address = c.get("clientAddress");
    const body = await readJson(c, ChatRequestSchema);
    if (body instanceof Response) {
      // A malformed request costs the session's rate like any other call (and is refused by it first).
      const rate = await deps.rateLimiter.check(sessionId);
      return rate.allowed ? body : refuseSessionRate(c, deps, rate.retryAfterSeconds);
    }
    const idemKey = body.clientMessageId ? keys.idempotency(sessionId, body.clientMessageId) : undefined;
    const fingerprint = fingerprintOf(body);
    const answerEarlier = (earlier: Earlier) => {
      if (!earlier) return undefined;
      if ("conflict" in earlier) {
        return apiError(
          c,
          409,
          ErrorCode.idempotencyConflict,
          "this clientMessageId was used for another message or conversation",
        );
      }
      return c.json(earlier.accepted, 202);
    };
    // The checks, in this order, each charging only when the ones before passed (docs/security.md "Rate limits"):
    // the session's rate, an earlier answer to the same clientMessageId, the conversation's owner, the address's
    // message characters (what an address may write is bounded), the concurrency slots of the session and of the
    // address. Without a clientMessageId all of them are one Redis call; with one, the rate comes first on its own.
    let sessionRate: RateCall | undefined = deps.rateLimiter.call(sessionId);
    if (idemKey) {
      const rate = await deps.rateLimiter.check(sessionId);
      if (!rate.allowed) return refuseSessionRate(c, deps, rate.retryAfterSeconds);
      sessionRate = undefined;
      const earlier = answerEarlier(readRecord(await redis.get(idemKey), fingerprint));
      if (earlier) return earlier;
    }
    // The turn is written by the same call once every check passed. Any failure before the stream is handed over
    // gives its slots and its turn back at once (a Redis blip must not lock a session at its cap until the slot
    // lapses); undoing what was never written is harmless.
    const streamId = newId("st");
    const slotKeys = deps.slots.keysFor(sessionId, address);
    const { turn, commands } = deps.conversations.turnCommands(sessionId, body.message, body.conversationId, {
      streamId,
      slots: slotKeys,
    });
    const undo = async () => {
      await deps.slots.release(slotKeys, streamId).catch(() => undefined);
      await deps.conversations.rollbackTurn(sessionId, turn);
    };
    let slot: AdmitDecision;
    try {
      slot = await deps.slots.admit({
        sessionId,
        address,
        streamId,
        sessionRate,
        conversationKey: body.conversationId ? keys.conversation(body.conversationId) : undefined,
        chars: deps.messageCharsLimiter.call(address, body.message.length),
        writes: commands,
      });
    } catch (error) {
      await undo().catch(() => undefined);
      throw error;
    }
    if (!slot.ok) {
      switch (slot.refused) {
        case "session_rate":
          return refuseSessionRate(c, deps, slot.decision.retryAfterSeconds);
        case "conversation":
          return apiError(c, 404, ErrorCode.notFound, "no such conversation");
        case "message_chars":
          return refuse(
            c,
            deps,
            "message_chars",
            ErrorCode.rateLimited,
            "this address sent too much text; retry later",
            slot.decision.retryAfterSeconds,
          );
        case "streams": {
          const cap = slot.scope === "session" ? deps.slots.caps.perSession : deps.slots.caps.perAddress;
          return refuse(
            c,
            deps,
            slot.scope === "session" ? "streams_session" : "streams_address",
            ErrorCode.tooManyStreams,
            `this ${slot.scope} already has ${cap} answers running; wait for one to end or cancel one`,
            1,
          );
        }
      }
    }
    try {
      if (idemKey) {
        const ttl = deps.streams.options.retentionTtlMs;
        const accepted = acceptedOf(turn);
        const claimed = await redis.set(idemKey, JSON.stringify({ accepted, fingerprint }), "PX", ttl, "NX");
        if (claimed !== "OK") {
          // The same request raced us and won: undo ours, answer with theirs (or refuse a different body).
          await undo();
          const earlier = answerEarlier(readRecord(await redis.get(idemKey), fingerprint));
          return earlier ?? apiError(c, 503, ErrorCode.unavailable, "the request could not be completed; retry it");
        }
      }
    } catch (error) {
      await undo().catch(() => undefined);
      throw error;
    }
    const accepted = acceptedOf(turn);
    deps.events.emit({
      type: "chat.requested",
      sessionId,
      streamId: turn.streamId,
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      newConversation: turn.newConversation,
      messageChars: body.message.length,
    });
    // The ids let the AI node start the stream in its claim and read the prompt beside it (docs/protocol.md).
    const dispatched = await deps.balancer.dispatch({
      streamId: turn.streamId,
      attempt: 1,
      start: {
        sessionId,
        conversationId: turn.conversationId,
        messageId: turn.assistantMessageId,
        userMessageId: turn.userMessageId,
      },
    });
    if (!dispatched.ok) {
      await undo();
      if (idemKey) await redis.del(idemKey);
      deps.log.warn({ sessionId, streamId: turn.streamId, tried: dispatched.tried }, "no AI node accepted the stream");
      return apiError(c, 503, ErrorCode.noAiNode, "no AI node could take the request; retry shortly");
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
