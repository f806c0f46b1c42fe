import { LIMITS } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import type { RedisCommand } from "./conversations";
import { keys } from "./keys";
import { type RateCall, type RateDecision, rateDecisionOf } from "./rate-limiter";
import { LuaScript } from "./redis";
import { ACQUIRE_SLOTS, RATE_LIMIT } from "./scripts";

export interface SlotCaps {
  /** Answers one session may have running at once. */
  perSession: number;
  /** Answers one client address may have running at once (all its sessions together). */
  perAddress: number;
}

export type SlotDecision = { ok: true; keys: SlotKeys } | { ok: false; scope: "session" | "address" };

/** The two slot sets a stream holds a place in; kept on the stream's meta so its `done` frees them. */
export interface SlotKeys {
  session: string;
  address: string;
}

const script = new LuaScript(ACQUIRE_SLOTS);

/**
 * A new chat's admission checks in one call, in the order POST /api/chat has always made them, each only when the
 * ones before passed, so nothing is charged after a refusal (docs/security.md "Rate limits"): the session's rate,
 * the conversation's owner, the address's message characters, then the slots. The rate checks and the slots run
 * the very scripts RateLimiter and `acquire` run (RATE_LIMIT, ACQUIRE_SLOTS), as local functions.
 * KEYS: 1 session rate bucket ('' to skip), 2 conversation hash ('' for a new one), 3 chars bucket, 4 session slots,
 *       5 address slots
 * ARGV: 1-3 the session rate's RATE_LIMIT args, 4 session id, 5-7 the chars' RATE_LIMIT args, 8 streamId,
 *       9 hold ms, 10 session cap, 11 address cap, then the writes of an admitted chat (its turn): for each command
 *       its length n, then its n words. They run only once every check passed, each whatever the others do (as in
 *       the MULTI they used to be sent in).
 * Returns {'ok', 0}, {'session_rate' | 'message_chars', retryAfterMs}, {'conversation', 0} (not the session's, or
 * none), or {'session' | 'address', 0} (that slot set is at its cap).
 */
const ADMIT_SCRIPT = new LuaScript(`
local function rate_limit(KEYS, ARGV)
${RATE_LIMIT}
end
local function acquire_slots(KEYS, ARGV)
${ACQUIRE_SLOTS}
end
if KEYS[1] ~= '' then
  local rate = rate_limit({KEYS[1]}, {ARGV[1], ARGV[2], ARGV[3]})
  if rate[1] ~= 1 then return {'session_rate', rate[2]} end
end
if KEYS[2] ~= '' and redis.call('HGET', KEYS[2], 'sessionId') ~= ARGV[4] then return {'conversation', 0} end
local chars = rate_limit({KEYS[3]}, {ARGV[5], ARGV[6], ARGV[7]})
if chars[1] ~= 1 then return {'message_chars', chars[2]} end
local slots = acquire_slots({KEYS[4], KEYS[5]}, {ARGV[8], ARGV[9], ARGV[10], ARGV[11]})
if slots ~= 'ok' then return {slots, 0} end
local i = 12
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return {'ok', 0}
`);

/** What a new chat is admitted by (StreamSlots.admit), in this order. */
export interface AdmitRequest {
  sessionId: string;
  address: string;
  streamId: string;
  /** The session's rate check (RateLimiter.call); omitted when the caller has charged it already. */
  sessionRate?: RateCall;
  /** An existing conversation, which must be the session's; omitted for a new one. */
  conversationKey?: string;
  /** The message's characters out of the address's bucket (RateLimiter.call with the message's length). */
  chars: RateCall;
  /** Written once admitted, in the same call (ConversationStore.turnCommands); the slots must be `keysFor`'s. */
  writes?: RedisCommand[];
}

export type AdmitDecision =
  | { ok: true; keys: SlotKeys }
  | { ok: false; refused: "session_rate" | "message_chars"; decision: Extract<RateDecision, { allowed: false }> }
  | { ok: false; refused: "conversation" }
  | { ok: false; refused: "streams"; scope: "session" | "address" };

/**
 * Concurrency caps per session and per client address, counted in Redis so they hold across gateways
 * (docs/security.md "Concurrent answers"). The append script frees a stream's slots with its `done`; a slot of a
 * stream that never ended lapses after `holdMs`, which outlasts any stream: its maximum duration plus the bound
 * within which a lost stream is ended.
 */
export class StreamSlots {
  readonly holdMs: number;

  constructor(
    private readonly redis: Redis,
    readonly caps: SlotCaps,
    maxDurationMs: number,
  ) {
    this.holdMs = maxDurationMs + LIMITS.streamFailureBoundMs;
  }

  keysFor(sessionId: string, address: string): SlotKeys {
    return { session: keys.sessionSlots(sessionId), address: keys.addressSlots(address) };
  }

  async acquire(sessionId: string, address: string, streamId: string): Promise<SlotDecision> {
    const slotKeys = this.keysFor(sessionId, address);
    const result = await script.run<unknown>(
      this.redis,
      [slotKeys.session, slotKeys.address],
      [streamId, this.holdMs, this.caps.perSession, this.caps.perAddress],
    );
    if (result === "ok") return { ok: true, keys: slotKeys };
    if (result === "session" || result === "address") return { ok: false, scope: result };
    throw new Error("slot script returned an unexpected reply");
  }

  /** The checks of a new chat, in one Redis call (ADMIT_SCRIPT); the first refusal ends it, charging nothing after. */
  async admit(request: AdmitRequest): Promise<AdmitDecision> {
    const slotKeys = this.keysFor(request.sessionId, request.address);
    const rate = request.sessionRate;
    const reply = await ADMIT_SCRIPT.run<unknown>(
      this.redis,
      [rate?.key ?? "", request.conversationKey ?? "", request.chars.key, slotKeys.session, slotKeys.address],
      [
        ...(rate?.args ?? [0, 0, 0]),
        request.sessionId,
        ...request.chars.args,
        request.streamId,
        this.holdMs,
        this.caps.perSession,
        this.caps.perAddress,
        ...(request.writes ?? []).flatMap((command) => [command.length, ...command]),
      ],
    );
    if (!Array.isArray(reply) || typeof reply[1] !== "number")
      throw new Error("admit script returned an unexpected reply");
    const [outcome, retryAfterMs] = reply as [unknown, number];
    switch (outcome) {
      case "ok":
        return { ok: true, keys: slotKeys };
      case "session_rate":
      case "message_chars": {
        const decision = rateDecisionOf([0, retryAfterMs]);
        if (decision.allowed) throw new Error("admit script returned an unexpected reply");
        return { ok: false, refused: outcome, decision };
      }
      case "conversation":
        return { ok: false, refused: "conversation" };
      case "session":
      case "address":
        return { ok: false, refused: "streams", scope: outcome };
      default:
        throw new Error("admit script returned an unexpected reply");
    }
  }

  /** Frees a stream's slots without its `done` (a turn rolled back because no AI node took it). */
  async release(slotKeys: SlotKeys, streamId: string): Promise<void> {
    await this.redis.multi().zrem(slotKeys.session, streamId).zrem(slotKeys.address, streamId).exec();
  }
}
