import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Credentials between nodes (docs/security.md "Node credentials"), from the CLUSTER_SECRET every node shares.
 * Redis is not trusted to say who is a node: anyone who can write to it could otherwise register an AI node of
 * their own and receive every dispatched stream.
 *
 * - An AI node's registration carries an HMAC of its name and URL; gateways ignore members without a valid one.
 * - Every dispatch from a gateway to an AI node is signed: an HMAC of a timestamp, the method, the path and the
 *   body's hash, in the `x-chatgrid-signature` header. The AI node refuses a missing, stale or wrong one (401).
 *   The secret itself never travels.
 */
export const SIGNATURE_HEADER = "x-chatgrid-signature";

/** A signed request older or newer than this (by the receiver's clock) is refused as stale. */
export const SIGNATURE_MAX_SKEW_MS = 30_000;

export type SignatureCheck = "ok" | "missing" | "malformed" | "stale" | "bad_signature";

/** `t=<ms>,v1=<64 hex>`: checked before a body is read. */
export const SIGNATURE_FORMAT = /^t=(\d{1,15}),v1=([0-9a-f]{64})$/;

const hmac = (secret: string, text: string): string => createHmac("sha256", secret).update(text).digest("hex");

function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length || !/^[0-9a-f]+$/.test(a)) return false;
  return timingSafeEqual(Buffer.from(a, "hex"), Buffer.from(b, "hex"));
}

const requestText = (at: number, method: string, path: string, body: string) =>
  `${at}\n${method.toUpperCase()}\n${path}\n${createHash("sha256").update(body).digest("hex")}`;

/** The `x-chatgrid-signature` value for a request: `t=<ms>,v1=<hex>`. */
export function signRequest(secret: string, method: string, path: string, body: string, now = Date.now()): string {
  return `t=${now},v1=${hmac(secret, requestText(now, method, path, body))}`;
}

export function verifyRequest(
  secret: string,
  header: string | undefined,
  method: string,
  path: string,
  body: string,
  now = Date.now(),
): SignatureCheck {
  if (!header) return "missing";
  const match = SIGNATURE_FORMAT.exec(header);
  if (!match) return "malformed";
  const at = Number(match[1]);
  if (Math.abs(now - at) > SIGNATURE_MAX_SKEW_MS) return "stale";
  return sameHex(match[2]!, hmac(secret, requestText(at, method, path, body))) ? "ok" : "bad_signature";
}

/** The MAC an AI node's registration carries: it binds its name to its URL. */
export function registrationMac(secret: string, name: string, url: string): string {
  return hmac(secret, `register\n${name}\n${url}`);
}

export function verifyRegistration(secret: string, name: string, url: string, mac: string): boolean {
  return sameHex(mac, registrationMac(secret, name, url));
}
