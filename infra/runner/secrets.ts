import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The runner's credentials, one file each in `<state dir>/secrets/` (0700; files 0600). */
export const SECRET_FILES = { redisPassword: "redis-password", clusterSecret: "cluster-secret" } as const;

/** Random bytes per generated secret: 32, i.e. 43 base64url characters. */
export const SECRET_BYTES = 32;

/** The shortest secret file the runner accepts (the nodes' CLUSTER_SECRET minimum). */
const MIN_CHARS = 32;

export const secretsDir = (stateDir: string): string => join(stateDir, "secrets");

/**
 * The secret in `<state dir>/secrets/<name>`, generated on first use (32 random bytes, base64url) and reused ever
 * after: the Redis data and every node of a restarted cluster keep working. Deleting the file rotates it at the next
 * start. The directory is kept 0700 and the file 0600 whatever they were.
 */
export function ensureSecret(stateDir: string, name: string): string {
  const dir = secretsDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, name);
  try {
    // `wx`: never overwrite one a concurrent start has just written.
    writeFileSync(file, randomBytes(SECRET_BYTES).toString("base64url"), { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  chmodSync(file, 0o600);
  const secret = readFileSync(file, "utf8").trim();
  if (secret.length < MIN_CHARS || /\s/.test(secret)) {
    throw new Error(
      `${file}: expected one line of at least ${MIN_CHARS} characters without spaces; delete the file and a new secret is generated at the next start`,
    );
  }
  return secret;
}
