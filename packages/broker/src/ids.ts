import { createHash, randomBytes } from "node:crypto";

/** Opaque ids with a readable prefix (`st_…` is a stream), 96 random bits: unguessable and short. */
export const newId = (prefix: "sess" | "conv" | "msg" | "st"): string =>
  `${prefix}_${randomBytes(12).toString("base64url")}`;

/** A session token: 256 random bits. Only its hash is stored. */
export const newToken = (): string => randomBytes(32).toString("base64url");

export const hashToken = (token: string): string => createHash("sha256").update(token).digest("hex");

/** 32 bytes in base64url without padding are exactly 43 characters of this alphabet. */
export const isWellFormedToken = (token: string): boolean => /^[A-Za-z0-9_-]{43}$/.test(token);
