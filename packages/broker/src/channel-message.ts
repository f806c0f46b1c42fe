import { FinishReasonSchema, ID_PATTERN } from "@chatgrid/protocol";
/**
 * What travels on a session channel: `streamId \n seq \n frameJson`.
 * The header lets a gateway order and dedupe without parsing the frame, and forward the frame bytes as they came.
 */
export interface ChannelMessage {
  streamId: string;
  seq: number;
  frame: string;
}

export function encodeChannelMessage(streamId: string, seq: number, frame: string): string {
  return channelMessageHeader(streamId, seq) + frame;
}

/** The message's header, `streamId \n seq \n`: the chunk script publishes it followed by the frame. */
export function channelMessageHeader(streamId: string, seq: number): string {
  return `${streamId}\n${seq}\n`;
}

/** Returns undefined for anything that is not a well-formed message, so a stray publish cannot crash a gateway. */
export function decodeChannelMessage(payload: string): ChannelMessage | undefined {
  const first = payload.indexOf("\n");
  if (first <= 0) return undefined;
  const second = payload.indexOf("\n", first + 1);
  if (second < 0) return undefined;
  const seqText = payload.slice(first + 1, second);
  if (!/^\d{1,15}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  return { streamId: payload.slice(0, first), seq, frame: payload.slice(second + 1) };
}

/** Why a channel message was not forwarded (a metric label: a small, fixed set). */
export type ChannelDropReason = "header" | "size" | "json" | "type" | "stream" | "seq" | "fields";

/** Longer frames are not events the append script writes (chunks are coalesced over milliseconds). */
export const MAX_CHANNEL_FRAME_CHARS = 1024 * 1024;

const STREAM_ID = ID_PATTERN;
const FINISH_REASONS: ReadonlySet<string> = new Set(FinishReasonSchema.options);
/** How each published frame begins (the append script writes the type first); built once, not per message. */
const FRAME_START: Record<string, string> = {
  start: '{"type":"start"',
  chunk: '{"type":"chunk"',
  reset: '{"type":"reset"',
  done: '{"type":"done"',
};

const isString = (value: unknown): value is string => typeof value === "string";
const optionalString = (value: unknown): boolean => value === undefined || typeof value === "string";

function isStreamError(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== "object" || value === null) return false;
  const error = value as Record<string, unknown>;
  return isString(error.code) && isString(error.message);
}

function isUsage(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== "object" || value === null) return false;
  const usage = value as Record<string, unknown>;
  return Number.isInteger(usage.promptTokens) && Number.isInteger(usage.completionTokens);
}

/**
 * A chunk's frame exactly as chunkFrame (frames.ts) writes it: `{"type":"chunk","streamId":"<id>","seq":<seq>,"delta":`
 * then the delta as one JSON string and `}`, nothing after it. The string grammar is RFC 8259's (section 7): any
 * character but `"`, `\` and the controls below U+0020, or an escape. Each position matches one way only, so the
 * time is linear in the delta's length.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a JSON string may not hold these controls unescaped.
const JSON_STRING_THEN_END = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"\}$/y;
/** Longer chunks take the general check: a regular expression's backtracking stack is not spent on megabytes. */
const CHUNK_SHORTCUT_MAX_CHARS = 16 * 1024;

/**
 * The hot path's shortcut: is this a chunk of `streamId` at `seq` byte for byte as the append script writes it? A
 * frame accepted here is one the general check accepts (a JSON object whose type is `chunk`, written first, with
 * this stream id, this seq and a string delta, and nothing else); any other frame, well-formed or not, goes to the
 * general check. No JSON.parse and no object per chunk: about a third of the time (channel-message.test.ts measures
 * both). `streamId` must be one that ID_PATTERN accepts (checkChannelFrame checks it first): it is compared as is.
 */
export function isChunkAsWritten(frame: string, streamId: string, seq: number): boolean {
  if (seq < 1 || frame.length > CHUNK_SHORTCUT_MAX_CHARS) return false;
  // One comparison of the whole head (a few startsWith calls at offsets cost more than building it).
  const head = `{"type":"chunk","streamId":"${streamId}","seq":${seq},"delta":`;
  if (frame.slice(0, head.length) !== head) return false;
  JSON_STRING_THEN_END.lastIndex = head.length;
  return JSON_STRING_THEN_END.test(frame);
}

/**
 * Is the frame a well-formed event of the stream its header names (docs/redis.md "channel message")? What a
 * gateway forwards to browsers must be what the append script publishes: a `start`, `chunk`, `reset` or `done`
 * of that stream at that seq, with its fields. Anything else (a stray or hostile PUBLISH) is dropped.
 *
 * This runs for every chunk of every stream: a chunk as the append script writes it is recognised by its bytes
 * (isChunkAsWritten), anything else costs one JSON.parse and a few field checks, not a schema parse
 * (channel-message.test.ts measures both). Returns the reason to drop, or undefined to forward.
 */
export function checkChannelFrame(message: ChannelMessage): ChannelDropReason | undefined {
  const { frame, streamId, seq } = message;
  if (frame.length > MAX_CHANNEL_FRAME_CHARS) return "size";
  if (!STREAM_ID.test(streamId)) return "stream";
  if (isChunkAsWritten(frame, streamId, seq)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame);
  } catch {
    return "json";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "json";
  const event = parsed as Record<string, unknown>;
  const type = event.type;
  if (type !== "chunk" && type !== "start" && type !== "reset" && type !== "done") return "type";
  // The append script writes the type first; a gateway tells `done` by these bytes (client-connection.ts).
  if (!frame.startsWith(FRAME_START[type]!)) return "type";
  if (event.streamId !== streamId) return "stream";
  if (event.seq !== seq) return "seq";
  switch (type) {
    case "chunk":
      return seq >= 1 && isString(event.delta) ? undefined : "fields";
    case "start":
      return seq === 0 && isString(event.conversationId) && isString(event.messageId) && isString(event.aiNode)
        ? undefined
        : "fields";
    case "reset":
      return seq >= 1 && optionalString(event.aiNode) ? undefined : "fields";
    case "done":
      return isString(event.finishReason) &&
        FINISH_REASONS.has(event.finishReason) &&
        isStreamError(event.error) &&
        isUsage(event.usage) &&
        optionalString(event.aiNode)
        ? undefined
        : "fields";
  }
}
