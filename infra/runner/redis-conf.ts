/** The memory bound of a Redis the runner starts, unless told otherwise. */
export const DEFAULT_REDIS_MAXMEMORY = "256mb";

/**
 * What Redis drops when it reaches maxmemory: the least recently used key among those with a TTL. Every chatgrid
 * key expires except two small sorted sets (docs/redis.md), so the bound costs old, expiring data, never a write.
 */
export const REDIS_MAXMEMORY_POLICY = "volatile-lru";

/** Redis's memory units: `268435456`, `256mb`, `1gb`, `512k` … (not 0, which would mean "no bound"). */
export const REDIS_MEMORY_SIZE = /^[1-9]\d*(b|k|kb|m|mb|g|gb)?$/i;
export const REDIS_MEMORY_EXPECTED = "expected a size such as 256mb, 1gb or 64mb (a positive number with b/kb/mb/gb)";

/** Throws unless `value` is a memory size Redis takes. */
export function requireRedisMemory(what: string, value: string): void {
  if (!REDIS_MEMORY_SIZE.test(value)) throw new Error(`${what}: ${REDIS_MEMORY_EXPECTED}, got "${value}"`);
}

export interface RedisConfOptions {
  port: number;
  /** The data directory (AOF). */
  dir: string;
  password: string;
  maxmemory: string;
}

/** A value in redis.conf syntax: double-quoted, with backslash escapes (sdssplitargs). */
const quote = (value: string) => `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * The redis.conf of the process target: loopback only, a password (`requirepass`) with protected mode on, AOF in
 * the state dir, no RDB snapshots, and a memory bound that evicts expiring keys. It holds the password, so the
 * runner writes it 0600 and passes only its path on the command line.
 */
export function renderRedisConf(options: RedisConfOptions): string {
  requireRedisMemory("maxmemory", options.maxmemory);
  if (/[\r\n]/.test(options.password)) throw new Error("the Redis password must be one line");
  return `# Written by infra/runner at every start. It holds the password: keep it 0600.
port ${options.port}
bind 127.0.0.1
protected-mode yes
requirepass ${quote(options.password)}
dir ${quote(options.dir)}
appendonly yes
save ""
maxmemory ${options.maxmemory}
maxmemory-policy ${REDIS_MAXMEMORY_POLICY}
`;
}
