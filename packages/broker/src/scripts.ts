/**
 * The Lua scripts that keep the stream invariants atomic (docs/architecture.md invariants 1, 2, 5, 6 and 10).
 * Each runs as one Redis operation, so no reader ever sees half an event.
 * Times come from Redis (`TIME`) so deadlines do not depend on the clocks of the nodes.
 */

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * The fence and seq checks of every append (docs/redis.md "The append scripts", steps 1–3), one Lua function for
 * both append scripts: nil when the event with `seq` may be appended by `attempt`, else what the script returns:
 * -2 unknown stream, -1 fenced off, the seq itself for a retry of an event already appended (so it is appended
 * once), -3 after done, -4 out of step.
 */
const REFUSAL = `local function refusal(meta, attempt, seq)
  local state = redis.call('HMGET', meta, 'status', 'attempt', 'seq')
  if not state[1] then return -2 end
  if tonumber(state[2]) ~= tonumber(attempt) then return -1 end
  local current = tonumber(state[3] or '-1')
  -- A retried call (its first try timed out after Redis ran it) must not append twice.
  if current >= seq then return seq end
  if state[1] == 'done' then return -3 end
  if current ~= seq - 1 then return -4 end
  return nil
end`;

/**
 * What every `start`, `reset` and `done` writes (docs/redis.md "The append scripts", step 4 and 7), one Lua function
 * for APPEND_EVENT and for the claim that starts a stream (CLAIM_STREAM): the seq, the history entry with its length
 * bound and expiry, and the channel message. Within a script the order does not matter to anyone: no other command
 * runs before the script ends.
 */
const WRITE_EVENT = `local function write_event(meta, events, seq, frame, max_len, history_ttl, channel, stream_id)
  redis.call('HSET', meta, 'seq', seq)
  redis.call('XADD', events, 'MAXLEN', '~', max_len, '0-' .. (seq + 1), 'f', frame)
  redis.call('PEXPIRE', events, history_ttl)
  redis.call('PUBLISH', channel, stream_id .. '\\n' .. seq .. '\\n' .. frame)
end`;

/**
 * Append one `start`, `reset` or `done` (chunks have their own script, appendChunksScript): next seq, add to the
 * bounded history and set its expiry, keep the text and status, publish.
 * KEYS: meta, events, text, lease, watch, and for `done` the stream's two slot sets (session, address) if it has them
 * ARGV: 1 attempt (fencing token), 2 kind, 3 frame prefix, 4 frame suffix, 5 delta, 6 max history length,
 *       7 history TTL ms, 8 session channel, 9 finishReason, 10 retention TTL ms, 11 streamId, 12 the seq this
 *       event gets (the writer is alone under its fence, so it knows; this makes a retried call idempotent)
 * Returns the seq, or -1 fenced off (a newer attempt owns the stream), -2 unknown stream, -3 already done,
 * -4 out of step (the writer's idea of the last seq is wrong).
 */
export const APPEND_EVENT = `
${REFUSAL}
${WRITE_EVENT}
local meta = KEYS[1]
local seq = tonumber(ARGV[12])
local refused = refusal(meta, ARGV[1], seq)
if refused then return refused end
local kind = ARGV[2]
local frame = ARGV[3] .. seq .. ARGV[4]
write_event(meta, KEYS[2], seq, frame, ARGV[6], ARGV[7], ARGV[8], ARGV[11])
if kind == 'chunk' then
  redis.call('APPEND', KEYS[3], ARGV[5])
elseif kind == 'start' or kind == 'reset' then
  redis.call('SET', KEYS[3], '', 'PX', ARGV[10])
end
if kind == 'done' then
  redis.call('HSET', meta, 'status', 'done', 'finishReason', ARGV[9], 'doneFrame', frame)
  redis.call('PEXPIRE', meta, ARGV[10])
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[11])
  -- Free the stream's concurrency slots (ACQUIRE_SLOTS), when the writer passed them (from the stream's meta).
  if KEYS[6] then redis.call('ZREM', KEYS[6], ARGV[11]) end
  if KEYS[7] then redis.call('ZREM', KEYS[7], ARGV[11]) end
end
return seq
`;

/**
 * How often the chunk script trims a stream's history: at every chunk whose seq is a multiple of this. Trimming
 * on every XADD (`MAXLEN ~`) cost about 1 µs of Redis per chunk (Redis checks the length and rewrites the command
 * for the AOF each time), for a bound that moves by one entry (docs/benchmarks.md "Changes, before and after").
 */
export const HISTORY_TRIM_EVERY = 64;

/**
 * Append a batch of `chunk`s, each to its own stream: the hot path. Chunks that a node appends in the same turn of
 * its event loop go to Redis as one call (ChunkBatcher), so the call's fixed cost (the request, the script's entry,
 * the reply) is paid once per batch instead of once per token (docs/redis.md "Appending chunks"). Each chunk does
 * only what a chunk needs: the fence and seq checks, the seq, the history entry, the text, the publish, with
 * nothing built in Lua: the writer knows the seq, so it sends the frame, the entry id and the channel message's
 * header whole. No expiry: the history's TTL is set by `start` and `reset` (APPEND_EVENT) and refreshed by `done`,
 * and a stream lasts at most STREAM_MAX_DURATION_MS, far below HISTORY_TTL_MS. The history is trimmed to its length
 * bound every HISTORY_TRIM_EVERY chunks (the bound is part of the script's text: it is the same for every call of a
 * store). Chunks of one stream in one batch run in their order.
 * KEYS: per chunk 3: meta, events, text
 * ARGV: per chunk 7: attempt, seq, entry id (`0-(seq+1)`), frame, delta, session channel, channel message header
 * Returns one result per chunk, each what APPEND_EVENT returns.
 */
export function appendChunksScript(historyMaxLen: number): string {
  if (!Number.isInteger(historyMaxLen) || historyMaxLen < 1) {
    throw new Error(`appendChunksScript: historyMaxLen must be a positive whole number, got ${historyMaxLen}`);
  }
  return `
${REFUSAL}
local function chunk(meta, events, text, a)
  local seq = tonumber(ARGV[a + 2])
  local refused = refusal(meta, ARGV[a + 1], seq)
  if refused then return refused end
  redis.call('HSET', meta, 'seq', seq)
  local frame = ARGV[a + 4]
  redis.call('XADD', events, ARGV[a + 3], 'f', frame)
  if seq % ${HISTORY_TRIM_EVERY} == 0 then redis.call('XTRIM', events, 'MAXLEN', '~', ${historyMaxLen}) end
  redis.call('APPEND', text, ARGV[a + 5])
  redis.call('PUBLISH', ARGV[a + 6], ARGV[a + 7] .. frame)
  return seq
end
local results = {}
for i = 1, #KEYS / 3 do
  local k = (i - 1) * 3
  results[i] = chunk(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], (i - 1) * 7)
end
return results
`;
}

/**
 * An AI node claims attempt N of a stream. Exactly one claim per attempt succeeds.
 * KEYS: meta, lease, watch, and to start the stream in the claim: events, text
 * ARGV: 1 attempt, 2 node, 3 lease ms, 4 streamId, and to start it: 5 sessionId, 6 conversationId, 7 messageId,
 *       8 userMessageId (the dispatch's, checked against the meta), 9 the `start` frame (seq 0), 10 max history
 *       length, 11 history TTL ms, 12 retention TTL ms, 13 session channel
 * Returns 'claimed' | 'already_claimed' | 'stale_attempt' | 'unknown', and the cancel flag; a claim also returns the
 * stream's meta as the claim left it (HGETALL), which the run needs first, and 1 if the claim wrote `start` (a
 * stream never started, with the start arguments passed), else 0. Ids that differ from the meta's: 'unknown'.
 * The meta and the `start` in the claim are round trips fewer before the first token (docs/benchmarks.md "Changes,
 * before and after", 8 and 9).
 */
export const CLAIM_STREAM = `
${NOW}
${WRITE_EVENT}
local meta = KEYS[1]
local state = redis.call('HMGET', meta, 'status', 'attempt', 'claimed', 'cancel', 'seq',
  'sessionId', 'conversationId', 'messageId', 'userMessageId')
if not state[1] then return {'unknown', 0} end
local starting = ARGV[5] ~= nil
if starting and (state[6] ~= ARGV[5] or state[7] ~= ARGV[6] or state[8] ~= ARGV[7] or state[9] ~= ARGV[8]) then
  return {'unknown', 0}
end
if state[1] == 'done' or tonumber(state[2]) ~= tonumber(ARGV[1]) then return {'stale_attempt', 0} end
if tonumber(state[3] or '0') >= tonumber(ARGV[1]) then return {'already_claimed', 0} end
redis.call('HSET', meta, 'claimed', ARGV[1], 'node', ARGV[2], 'status', 'running')
redis.call('SET', KEYS[2], ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
local started = 0
if starting and not state[5] then
  write_event(meta, KEYS[4], 0, ARGV[9], ARGV[10], ARGV[11], ARGV[13], ARGV[4])
  redis.call('SET', KEYS[5], '', 'PX', ARGV[12])
  started = 1
end
return {'claimed', tonumber(state[4] or '0'), redis.call('HGETALL', meta), started}
`;

/**
 * The running AI node renews its lease. KEYS: meta, lease, watch  ARGV: 1 attempt, 2 node, 3 lease ms, 4 streamId
 * Returns 1 renewed, 2 renewed and cancel requested, 0 lost (taken over or ended).
 */
export const RENEW_LEASE = `
${NOW}
local state = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'cancel')
if not state[1] or state[1] == 'done' or tonumber(state[2]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
if state[3] == '1' then return 2 end
return 1
`;

/**
 * A gateway found a stream past its watch deadline. If the lease has lapsed without done, bump the attempt:
 * the new attempt number is the fencing token, and the bump is the lock (only one caller sees the deadline due).
 * KEYS: meta, lease, watch   ARGV: 1 streamId, 2 dispatch deadline ms
 * Returns {'alive'|'gone'|'not_due'|'takeover', newAttempt, cancelFlag, previousNode}
 */
export const TAKE_OVER = `
${NOW}
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not score then return {'gone', 0, 0, ''} end
if tonumber(score) > now then return {'not_due', 0, 0, ''} end
local state = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'cancel', 'node')
if not state[1] or state[1] == 'done' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {'gone', 0, 0, ''}
end
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then
  redis.call('ZADD', KEYS[3], now + pttl, ARGV[1])
  return {'alive', 0, 0, ''}
end
local nextAttempt = tonumber(state[2]) + 1
redis.call('HSET', KEYS[1], 'attempt', nextAttempt, 'status', 'queued')
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
return {'takeover', nextAttempt, tonumber(state[3] or '0'), state[4] or ''}
`;

/**
 * Ask for a stream to be cancelled, from any gateway. KEYS: meta  ARGV: 1 sessionId, 2 cancel channel, 3 streamId
 * Returns 'unknown' (not this session's), 'ended', or 'requested'.
 */
export const REQUEST_CANCEL = `
local state = redis.call('HMGET', KEYS[1], 'sessionId', 'status')
if not state[1] or state[1] ~= ARGV[1] then return 'unknown' end
if state[2] == 'done' then return 'ended' end
redis.call('HSET', KEYS[1], 'cancel', 1)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 'requested'
`;

/**
 * A token bucket as GCRA: the key holds the theoretical arrival time (TAT) of the next request, in ms.
 * KEYS: bucket   ARGV: 1 emission interval ms (period / rate), 2 burst (tokens), 3 cost (tokens this request takes)
 * Returns {1, 0} allowed (and charged) or {0, retryAfterMs} refused (nothing charged).
 */
export const RATE_LIMIT = `
${NOW}
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local newTat = tat + interval * cost
-- Allowed while the bucket would still be within its burst: newTat may run ahead of now by burst intervals.
local allowAt = newTat - interval * burst
if allowAt > now then return {0, math.ceil(allowAt - now)} end
redis.call('SET', KEYS[1], string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1)
return {1, 0}
`;

/**
 * Take a concurrency slot for a new stream in its session's and its address's slot sets, or neither.
 * A slot is a zset member streamId → expiry (ms): `done` removes it (APPEND_EVENT), and one whose stream never
 * ended (its nodes died, its `done` was never written) lapses at its expiry, so a slot cannot leak.
 * KEYS: session slots, address slots   ARGV: 1 streamId, 2 hold ms, 3 session cap, 4 address cap
 * Returns 'ok', 'session' (the session is at its cap) or 'address'.
 */
export const ACQUIRE_SLOTS = `
${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 'session' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'address' end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 'ok'
`;
