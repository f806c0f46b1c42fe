/**
 * The Redis key layout, in one place. Documented in docs/redis.md; keep both in step.
 *
 * Keys of one stream share the hash tag `{streamId}` so the append script touches one slot per stream;
 * the global watch set means the deployment uses Redis without cluster mode (one shard plus replicas),
 * which is what ElastiCache's replicated, automatically failed-over setup gives.
 */
export const PREFIX = "cg";

export const keys = {
  /** string → sessionId; its TTL is the session's idle timeout. The token itself is never stored. */
  token: (tokenHash: string) => `${PREFIX}:tok:${tokenHash}`,
  /** hash {createdAt}; same idle TTL as the token. */
  session: (sessionId: string) => `${PREFIX}:sess:${sessionId}`,
  /** zset conversationId → updatedAt (ms): the session's conversations, newest first. */
  sessionConversations: (sessionId: string) => `${PREFIX}:sess:${sessionId}:convs`,
  /** hash {sessionId, title, createdAt, updatedAt}. */
  conversation: (conversationId: string) => `${PREFIX}:conv:${conversationId}`,
  /** list of messageIds in order. */
  conversationMessages: (conversationId: string) => `${PREFIX}:conv:${conversationId}:msgs`,
  /** hash {id, role, createdAt, content (user messages), streamId (assistant messages)}. */
  message: (messageId: string) => `${PREFIX}:msg:${messageId}`,
  /** hash: the stream's state (see StreamMeta). */
  streamMeta: (streamId: string) => `${PREFIX}:stream:{${streamId}}`,
  /**
   * Redis Stream: the history's start, reset and done, id `0-(seq+1)`, field `f` = the frame's JSON; expiring. The
   * chunks' history is the text list (docs/redis.md "The history").
   */
  streamEvents: (streamId: string) => `${PREFIX}:stream:{${streamId}}:events`,
  /**
   * list: the assistant text since the last `reset`, one delta per chunk after a placeholder, named by the attempt
   * that writes it (a takeover renames it to the next attempt's name: the chunk script's fence; docs/redis.md).
   */
  streamText: (streamId: string, attempt: number) => `${PREFIX}:stream:{${streamId}}:text:${attempt}`,
  /** list: an ended stream's text list, renamed by its `done` so that no chunk can follow it (docs/redis.md). */
  streamTextDone: (streamId: string) => `${PREFIX}:stream:{${streamId}}:text:done`,
  /**
   * string: the text as versions before the text lists kept it (one APPEND per chunk); only read, for streams
   * that have no list (READ_TEXT), and gone RETENTION_TTL_MS after the upgrade.
   */
  legacyStreamText: (streamId: string) => `${PREFIX}:stream:{${streamId}}:text`,
  /** string `node:attempt` with a PX TTL: the running AI node's lease. */
  streamLease: (streamId: string) => `${PREFIX}:stream:{${streamId}}:lease`,
  /** zset streamId → deadline (ms): streams that are not done; past the deadline a gateway checks them. */
  watch: () => `${PREFIX}:streams:watch`,
  /** string: the 202 body of a chat request, for idempotent retries with the same clientMessageId. */
  idempotency: (sessionId: string, clientMessageId: string) => `${PREFIX}:idem:${sessionId}:${clientMessageId}`,
  /** string: a token bucket's theoretical arrival time (ms), per limit scope and id (session, client address). */
  rate: (scope: string, id: string) => `${PREFIX}:rl:${scope}:${id}`,
  /** zset streamId → expiry (ms): the session's answers running now (its concurrency slots). */
  sessionSlots: (sessionId: string) => `${PREFIX}:slots:s:${sessionId}`,
  /** zset streamId → expiry (ms): the client address's answers running now. */
  addressSlots: (address: string) => `${PREFIX}:slots:a:${address}`,
  /** zset JSON {name,url,mac} → expiry (ms): AI nodes that registered themselves (docs/security.md). */
  aiNodes: () => `${PREFIX}:ai:nodes`,
} as const;

export const channels = {
  /** Every event of every stream of one session. Only gateways holding a socket of the session subscribe. */
  session: (sessionId: string) => `${PREFIX}:ch:${sessionId}`,
  /** Stream ids whose cancel was requested; every AI node subscribes (cancels are rare). */
  cancel: () => `${PREFIX}:ch:cancel`,
} as const;

/** The seq of a Redis stream entry id: seq 0 is `0-1` so XRANGE can start right after any seq (READ_AFTER). */
export const seqOfEntryId = (id: string): number => Number(id.slice(id.indexOf("-") + 1)) - 1;
