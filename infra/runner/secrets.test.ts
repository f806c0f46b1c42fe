import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_REDIS_MAXMEMORY, REDIS_MAXMEMORY_POLICY, renderRedisConf, requireRedisMemory } from "./redis-conf";
import { ensureSecret, SECRET_BYTES } from "./secrets";
import { resolveUser } from "./unprivileged";

const dirs: string[] = [];
const stateDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-secrets-test-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const mode = (path: string) => statSync(path).mode & 0o777;

describe("ensureSecret", () => {
  it("generates 32 random bytes (base64url) once, then returns the same value; dir 0700, file 0600", () => {
    const state = stateDir();
    const first = ensureSecret(state, "one");
    expect(Buffer.from(first, "base64url")).toHaveLength(SECRET_BYTES);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ensureSecret(state, "one")).toBe(first);
    expect(ensureSecret(state, "two")).not.toBe(first);
    expect(mode(join(state, "secrets"))).toBe(0o700);
    expect(mode(join(state, "secrets", "one"))).toBe(0o600);
    expect(readFileSync(join(state, "secrets", "one"), "utf8")).toBe(first);
  });

  it("puts loosened modes back to 0700/0600 and keeps the value", () => {
    const state = stateDir();
    const value = ensureSecret(state, "s");
    chmodSync(join(state, "secrets"), 0o755);
    chmodSync(join(state, "secrets", "s"), 0o644);
    expect(ensureSecret(state, "s")).toBe(value);
    expect(mode(join(state, "secrets"))).toBe(0o700);
    expect(mode(join(state, "secrets", "s"))).toBe(0o600);
  });

  it("accepts a secret someone wrote (with a trailing newline), refuses a short or multi-word one naming the file", () => {
    const state = stateDir();
    ensureSecret(state, "x");
    const file = join(state, "secrets", "x");
    writeFileSync(file, `${"k".repeat(40)}\n`);
    expect(ensureSecret(state, "x")).toBe("k".repeat(40));
    writeFileSync(file, "short");
    expect(() => ensureSecret(state, "x")).toThrow(
      `${file}: expected one line of at least 32 characters without spaces; delete the file and a new secret is generated at the next start`,
    );
    writeFileSync(file, `${"a".repeat(20)} ${"b".repeat(20)}`);
    expect(() => ensureSecret(state, "x")).toThrow(`${file}: expected one line`);
  });
});

describe("renderRedisConf", () => {
  it("requires the password with protected mode on, loopback only, AOF, no RDB, the bound and volatile-lru", () => {
    const conf = renderRedisConf({ port: 7777, dir: "/state dir/redis", password: 'p"w\\x', maxmemory: "64mb" });
    expect(conf.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([
      "port 7777",
      "bind 127.0.0.1",
      "protected-mode yes",
      'requirepass "p\\"w\\\\x"',
      'dir "/state dir/redis"',
      "appendonly yes",
      'save ""',
      "maxmemory 64mb",
      "maxmemory-policy volatile-lru",
    ]);
    expect(DEFAULT_REDIS_MAXMEMORY).toBe("256mb");
    expect(REDIS_MAXMEMORY_POLICY).toBe("volatile-lru");
  });

  it("refuses a password on two lines (it would end the directive) and a memory size Redis would not take", () => {
    expect(() => renderRedisConf({ port: 1, dir: "/d", password: "a\nrequirepass b", maxmemory: "1mb" })).toThrow(
      "the Redis password must be one line",
    );
    for (const bad of ["0", "0mb", "-1mb", "lots", "256 mb", "1tb", ""]) {
      expect(() => requireRedisMemory("redisMaxMemory", bad), bad).toThrow(
        `redisMaxMemory: expected a size such as 256mb, 1gb or 64mb (a positive number with b/kb/mb/gb), got "${bad}"`,
      );
    }
    for (const good of ["256mb", "1gb", "512k", "268435456", "64MB"]) {
      expect(() => requireRedisMemory("redisMaxMemory", good), good).not.toThrow();
    }
  });
});

describe("resolveUser", () => {
  it("finds nobody's ids and primary group; refuses root and a user that does not exist", () => {
    const nobody = resolveUser("nobody");
    expect(nobody.uid).toBeGreaterThan(0);
    expect(nobody.user).toBe("nobody");
    expect(nobody.group.length).toBeGreaterThan(0);
    expect(() => resolveUser("root")).toThrow('user "root" is root (uid 0): pick an unprivileged user');
    expect(() => resolveUser("no-such-user-chatgrid")).toThrow('user "no-such-user-chatgrid" does not exist');
  });
});
