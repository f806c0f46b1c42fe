import { LIMITS } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { keys } from "./keys";
import { LuaScript } from "./redis";
import { ACQUIRE_SLOTS } from "./scripts";

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

  /** Frees a stream's slots without its `done` (a turn rolled back because no AI node took it). */
  async release(slotKeys: SlotKeys, streamId: string): Promise<void> {
    await this.redis.multi().zrem(slotKeys.session, streamId).zrem(slotKeys.address, streamId).exec();
  }
}
