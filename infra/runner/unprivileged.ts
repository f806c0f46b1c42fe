import { spawnSync } from "node:child_process";
import { chownSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** A user (and its primary group) to run a process as. */
export interface RunAs {
  user: string;
  uid: number;
  group: string;
  gid: number;
}

/** The user the runner drops to when it runs as root (Debian's `nobody`, group `nogroup`). */
export const UNPRIVILEGED_USER = "nobody";

/** One entry of a colon-separated database (passwd, group), by name or by numeric id in the third field. */
function lookup(database: "passwd" | "group", key: string): string[] | undefined {
  // getent sees NSS too; /etc/<database> is the fallback where getent is missing.
  const getent = spawnSync("getent", [database, key], { encoding: "utf8" });
  if (getent.status === 0 && getent.stdout.trim()) return getent.stdout.trim().split("\n")[0]!.split(":");
  try {
    return readFileSync(`/etc/${database}`, "utf8")
      .split("\n")
      .map((line) => line.split(":"))
      .find((fields) => fields[0] === key || fields[2] === key);
  } catch {
    return undefined;
  }
}

/** The uid, gid and group name of `user`; throws naming the user when the system has no such account. */
export function resolveUser(user: string): RunAs {
  const passwd = lookup("passwd", user);
  if (!passwd || passwd.length < 4) {
    throw new Error(
      `user "${user}" does not exist: the runner runs redis-server and nginx's workers as an unprivileged user when it runs as root`,
    );
  }
  const uid = Number(passwd[2]);
  const gid = Number(passwd[3]);
  if (uid === 0) throw new Error(`user "${user}" is root (uid 0): pick an unprivileged user`);
  const group = lookup("group", String(gid))?.[0] ?? String(gid);
  return { user: passwd[0]!, uid, group, gid };
}

/** Whom to drop to: an unprivileged user when this process is root, nobody (undefined) otherwise. */
export function unprivilegedUser(user = UNPRIVILEGED_USER): RunAs | undefined {
  return process.getuid?.() === 0 ? resolveUser(user) : undefined;
}

/** True when `who` can do `test <flag> path` (e.g. `-r` read, `-w` write, `-x` traverse), asked as that user. */
export function canAccess(who: RunAs, flag: "-r" | "-w" | "-x", path: string): boolean {
  return spawnSync("test", [flag, path], { uid: who.uid, gid: who.gid, stdio: "ignore" }).status === 0;
}

/** The first directory on the way to `path` (itself included) that `who` cannot traverse, or undefined. */
export function firstUntraversable(who: RunAs, path: string): string | undefined {
  const chain: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  return chain.find((dir) => !canAccess(who, "-x", dir));
}

/** chown -R, without following symlinks out of the tree. */
export function chownTree(path: string, uid: number, gid: number): void {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  chownSync(path, uid, gid);
  if (stat.isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid);
}
