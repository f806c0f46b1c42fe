/**
 * The Lua scripts that keep the stream invariants atomic (docs/architecture.md invariants 1, 2, 5, 6 and 10).
 * Each runs as one Redis operation, so no reader ever sees half an event.
 * Times come from Redis (`TIME`) so deadlines do not depend on the clocks of the nodes.
 */

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * How far the seq jumps when a running stream's text list is gone (Redis evicted it, or a failover lost it): the
 * list held its chunks, so their seqs are unknown, and a seq a client already saw must never be written again. An
 * attempt writes fewer chunks than this (MAX_ANSWER_CHARS and MAX_ANSWER_TOKENS are far below), so the next event
 * is past all of them; clients see a gap and get the text as a snapshot (docs/redis.md "The text list").
 */
export const SEQ_SKIP_AFTER_LOSS = 1 << 30;

/**
 * The seq of a stream's last event, for the rare writes (start, reset, done, a takeover's claim) and the reads:
 * chunks do not write the meta's `seq` (docs/redis.md "The text list"), so it is the greatest of the meta's `seq`
 * (the last start, reset, done or claim), the text list's (`textSeq` + its length - 1: the list holds a placeholder
 * and one delta per chunk since that start or reset) and the history's last entry; -1 before `start`. For a takeover's
 * claim (`lost_skip` SEQ_SKIP_AFTER_LOSS), a stream that is not done and whose list is gone skips that far past the
 * meta's seq: the previous writer's chunks went with the list. The writer that holds the fence passes none: it
 * knows every seq it wrote, and its next event is checked against what Redis still has.
 */
const LAST_SEQ = `local function last_seq(meta, events, text, lost_skip)
  local state = redis.call('HMGET', meta, 'seq', 'textSeq', 'status')
  local last = tonumber(state[1] or '-1')
  local length = redis.call('LLEN', text)
  if length > 0 and state[2] then last = math.max(last, tonumber(state[2]) + length - 1)
  elseif state[2] and state[3] ~= 'done' then last = last + (lost_skip or 0) end
  local top = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
  if top then last = math.max(last, tonumber(string.match(top[1], '-(%d+)$')) - 1) end
  return last
end`;

/**
 * The fence and seq checks of `start`, `reset` and `done` (docs/redis.md "The append scripts", steps 1–3): nil when
 * the event `kind` with `seq` may be appended by `attempt`, else what the script returns: -2 unknown stream, -1
 * fenced off, the seq itself for a retry of this very event (a `done` at the meta's seq, a `start` or `reset` where
 * the text list begins with nothing after it: so it is appended once), -3 after done, -4 out of step (any other
 * seq: a writer whose idea of the last seq is old is refused, never answered as if it had written). Chunks check
 * the same with their text list's length (APPEND_CHUNKS).
 */
const REFUSAL = `${LAST_SEQ}
local function refusal(meta, events, text, attempt, kind, seq)
  local state = redis.call('HMGET', meta, 'status', 'attempt', 'seq', 'textSeq')
  if not state[1] then return -2 end
  if tonumber(state[2]) ~= tonumber(attempt) then return -1 end
  -- A retried call (its first try timed out after Redis ran it) must not append twice.
  if kind == 'done' and state[1] == 'done' and tonumber(state[3]) == seq then return seq end
  if state[1] == 'done' then return -3 end
  local current = last_seq(meta, events, text)
  if kind ~= 'done' and state[4] and tonumber(state[4]) == seq and current == seq then return seq end
  if current ~= seq - 1 then return -4 end
  return nil
end`;

/**
 * A `start` or `reset` begins the text afresh: the attempt's text list holds only its placeholder (the first
 * element, so a list that exists is never empty and a chunk's RPUSH answers at least 2), and the meta's `textSeq`
 * says which seq the list starts at.
 */
const BEGIN_TEXT = `local function begin_text(meta, text, seq, retention_ttl)
  redis.call('DEL', text)
  redis.call('RPUSH', text, '')
  redis.call('PEXPIRE', text, retention_ttl)
  redis.call('HSET', meta, 'textSeq', seq)
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
 * Append one `start`, `reset` or `done` (chunks have their own script, APPEND_CHUNKS): next seq, add to the
 * bounded history and set its expiry, keep the text and status, publish.
 * KEYS: meta, events, the attempt's text list, lease, watch, the ended text list's name, and for `done` the
 *       stream's two slot sets (session, address) if it has them
 * ARGV: 1 attempt (fencing token), 2 kind, 3 frame prefix, 4 frame suffix, 5 max history length, 6 history TTL ms,
 *       7 session channel, 8 finishReason, 9 retention TTL ms, 10 streamId, 11 the seq this event gets (the writer
 *       is alone under its fence, so it knows; this makes a retried call idempotent)
 * Returns the seq, or -1 fenced off (a newer attempt owns the stream), -2 unknown stream, -3 already done,
 * -4 out of step (the writer's idea of the last seq is wrong).
 */
export const APPEND_EVENT = `
${REFUSAL}
${WRITE_EVENT}
${BEGIN_TEXT}
local meta = KEYS[1]
local seq = tonumber(ARGV[11])
local refused = refusal(meta, KEYS[2], KEYS[3], ARGV[1], ARGV[2], seq)
if refused then return refused end
local kind = ARGV[2]
local frame = ARGV[3] .. seq .. ARGV[4]
write_event(meta, KEYS[2], seq, frame, ARGV[5], ARGV[6], ARGV[7], ARGV[10])
if kind == 'start' or kind == 'reset' then begin_text(meta, KEYS[3], seq, ARGV[9]) end
if kind == 'done' then
  redis.call('HSET', meta, 'status', 'done', 'finishReason', ARGV[8], 'doneFrame', frame)
  redis.call('PEXPIRE', meta, ARGV[9])
  -- The list leaves the attempt's name: a chunk sent after done finds none and is refused, whatever its seq.
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('PEXPIRE', KEYS[3], ARGV[9])
    redis.call('RENAME', KEYS[3], KEYS[6])
  end
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[10])
  -- Free the stream's concurrency slots (ACQUIRE_SLOTS), when the writer passed them (from the stream's meta).
  if KEYS[7] then redis.call('ZREM', KEYS[7], ARGV[10]) end
  if KEYS[8] then redis.call('ZREM', KEYS[8], ARGV[10]) end
end
return seq
`;

/**
 * Append a batch of `chunk`s, each to its own stream: the hot path, two calls per chunk (docs/redis.md "Appending
 * chunks"). Chunks that a node appends in the same turn of its event loop go to Redis as one call (ChunkBatcher),
 * so the call's fixed cost (the request, the script's entry, the reply) is paid once per batch.
 *
 * A chunk pushes its delta onto its attempt's text list. RPUSH answers with the list's new length, and that is the
 * fence and the seq check at once (docs/redis.md "The text list"): the writer sends the length its chunk makes
 * (seq - textSeq + 1), which only the list of the attempt that owns the stream, holding exactly the chunks before
 * this one, gives. A writer fenced off has no list (the takeover renamed it to the next attempt's), so its RPUSH
 * makes a one-element list, which is deleted again. Any other length is undone at once, so a refused chunk writes
 * nothing, and returned: the writer reads why from the meta (explainChunkRefusal), off the hot path. Then the
 * publish of the channel message, which the writer sends whole. The list is the chunk's history too: a resume
 * rebuilds a chunk's frame from its delta and seq (READ_AFTER), so no second copy is written per chunk. Each
 * argument costs Redis a string in and a Lua string, so a chunk carries only the four the two calls and the check
 * need (docs/benchmarks.md "Changes, before and after", 14 and 16). Chunks of one stream in one batch run in order.
 * KEYS: per chunk 1: the attempt's text list
 * ARGV: per chunk 4: the text list's length after this chunk, delta, session channel, channel message
 * Returns 0 when every chunk was appended, else {index, the length its push made, ...} of each refused chunk
 * (1-based, in order).
 */
export const APPEND_CHUNKS = `
local refused = nil
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local length = redis.call('RPUSH', KEYS[i], ARGV[a + 2])
  if length == tonumber(ARGV[a + 1]) then
    redis.call('PUBLISH', ARGV[a + 3], ARGV[a + 4])
  else
    if length == 1 then redis.call('DEL', KEYS[i]) else redis.call('RPOP', KEYS[i]) end
    refused = refused or {}
    refused[#refused + 1] = i
    refused[#refused + 1] = length
  end
end
return refused or 0
`;

/**
 * The events after a seq, for a resume (StreamStore.readAfter): the history's `start`, `reset` and `done` entries
 * and the chunks from the text list (one delta per seq after `textSeq`), in one step, so no event written between
 * two reads is missed. The stream's events key is the history's presence: once it expired (HISTORY_TTL_MS after
 * the last start, reset or done) nothing is replayed, and the reader sends the text as a snapshot. A resume replays
 * at most `max history length` events ending at the stream's last one (LAST_SEQ): one from further back gets the
 * newest only, and so a snapshot first.
 * KEYS: meta, events, the text list of attempt ARGV[3], the ended text list
 * ARGV: 1 afterSeq, 2 count, 3 the attempt the caller expects, 4 max history length
 * Returns {} for an unknown stream or an expired history, {'moved', attempt} when the stream's attempt is another
 * (read again with its list), else {'events', entries (XRANGE's reply), the seq of the first delta, deltas}.
 */
export const READ_AFTER = `
${LAST_SEQ}
local state = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'textSeq')
if not state[1] or redis.call('EXISTS', KEYS[2]) == 0 then return {} end
if tonumber(state[2]) ~= tonumber(ARGV[3]) then return {'moved', tonumber(state[2])} end
local text = state[1] == 'done' and KEYS[4] or KEYS[3]
local after = math.max(tonumber(ARGV[1]), last_seq(KEYS[1], KEYS[2], text) - tonumber(ARGV[4]))
local count = tonumber(ARGV[2])
local entries = redis.call('XRANGE', KEYS[2], '0-' .. (after + 2), '+', 'COUNT', count)
local first = 0
local deltas = {}
if state[3] then
  -- The list holds a placeholder, then the delta of seq textSeq + i at index i.
  local from = math.max(1, after - tonumber(state[3]) + 1)
  first = tonumber(state[3]) + from
  deltas = redis.call('LRANGE', text, from, from + count - 1)
end
return {'events', entries, first, deltas}
`;

/**
 * An AI node claims attempt N of a stream. Exactly one claim per attempt succeeds.
 * KEYS: meta, lease, watch, events, the attempt's text list
 * ARGV: 1 attempt, 2 node, 3 lease ms, 4 streamId, and to start it: 5 sessionId, 6 conversationId, 7 messageId,
 *       8 userMessageId (the dispatch's, checked against the meta), 9 the `start` frame (seq 0), 10 max history
 *       length, 11 history TTL ms, 12 retention TTL ms, 13 session channel
 * Returns 'claimed' | 'already_claimed' | 'stale_attempt' | 'unknown', and the cancel flag; a claim also returns the
 * stream's meta as the claim left it (HGETALL), which the run needs first, and 1 if the claim wrote `start` (a
 * stream never started, with the start arguments passed), else 0. Ids that differ from the meta's: 'unknown'.
 * The claim of a started stream (a takeover) writes the seq of its last event into the meta first (chunks do not:
 * LAST_SEQ), so the run goes on from the meta it is given; when the text list is gone it forgets `textSeq` too. The meta and the `start` in the claim are round trips
 * fewer before the first token (docs/benchmarks.md "Changes, before and after", 8 and 9).
 */
export const CLAIM_STREAM = `
${NOW}
${WRITE_EVENT}
${LAST_SEQ}
${BEGIN_TEXT}
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
if state[5] then
  redis.call('HSET', meta, 'seq', last_seq(meta, KEYS[4], KEYS[5], ${SEQ_SKIP_AFTER_LOSS}))
  -- A lost text list (LAST_SEQ skipped past its chunks): the text begins anew at the run's reset, so the skip is
  -- taken once.
  if redis.call('EXISTS', KEYS[5]) == 0 then redis.call('HDEL', meta, 'textSeq') end
elseif starting then
  write_event(meta, KEYS[4], 0, ARGV[9], ARGV[10], ARGV[11], ARGV[13], ARGV[4])
  begin_text(meta, KEYS[5], 0, ARGV[12])
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
 * The text list moves to the new attempt's name with it, so the old attempt's writer finds none and every chunk it
 * still sends is refused (APPEND_CHUNKS); the new attempt goes on from the same text.
 * KEYS: meta, lease, watch, the text list of attempt ARGV[3], the text list of attempt ARGV[3] + 1
 * ARGV: 1 streamId, 2 dispatch deadline ms, 3 the attempt the caller read (the keys are named from it)
 * Returns {'alive'|'gone'|'not_due'|'takeover', newAttempt, cancelFlag, previousNode}; 'not_due' too when the
 * attempt moved on since the caller read it (the next sweep reads it again).
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
if tonumber(state[2]) ~= tonumber(ARGV[3]) then return {'not_due', 0, 0, ''} end
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then
  redis.call('ZADD', KEYS[3], now + pttl, ARGV[1])
  return {'alive', 0, 0, ''}
end
local nextAttempt = tonumber(state[2]) + 1
redis.call('HSET', KEYS[1], 'attempt', nextAttempt, 'status', 'queued')
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[5]) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
return {'takeover', nextAttempt, tonumber(state[3] or '0'), state[4] or ''}
`;

/**
 * A stream's text and its seq, read together (StreamStore.text): the meta's status, finishReason, doneFrame and the
 * seq of its last event (LAST_SEQ), and the text since the last reset joined from the attempt's list.
 * KEYS: meta, the text list of attempt ARGV[1], events, the stream's text as a string (written before the text
 *       lists: read for a stream that has no list, until RETENTION_TTL_MS after the upgrade has expired them all),
 *       the ended text list (read when the stream is done)
 * ARGV: 1 the attempt the caller expects
 * Returns {} for an unknown stream, {'moved', attempt} when the stream's attempt is another (read again with its
 * list), else {'text', status, finishReason or '', doneFrame or '', seq, text or false}: seq -1 before `start`, and
 * the text false when the list is gone (evicted) although the stream started.
 */
export const READ_TEXT = `
${LAST_SEQ}
local state = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'textSeq', 'finishReason', 'doneFrame')
if not state[1] then return {} end
if tonumber(state[2]) ~= tonumber(ARGV[1]) then return {'moved', tonumber(state[2])} end
local parts = redis.call('LRANGE', state[1] == 'done' and KEYS[5] or KEYS[2], 0, -1)
local text = false
if #parts > 0 and state[3] then text = table.concat(parts)
elseif #parts == 0 then text = redis.call('GET', KEYS[4]) end
return {'text', state[1], state[4] or '', state[5] or '', last_seq(KEYS[1], KEYS[3], KEYS[2]), text}
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
