import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";

/** At most this many characters of an address are used as a key (an IPv6 address is at most 45). */
const MAX_ADDRESS_CHARS = 64;
const ADDRESS = /^[0-9A-Fa-f:.]{2,64}$/;

/**
 * The client's address, for the per-address limits (docs/security.md "Who is an address"). Behind nginx it is the
 * header nginx sets from the connection (`X-Real-IP $remote_addr`, which nginx overwrites, so a client cannot
 * choose it); gateways are never published directly. Without the header, the TCP peer's address.
 * `header` empty: always the TCP peer (a gateway reached directly by clients).
 */
export function clientAddress(c: Context, header: string): string {
  if (header) {
    const value = c.req.header(header)?.trim();
    if (value && ADDRESS.test(value)) return value.slice(0, MAX_ADDRESS_CHARS);
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // Not served by @hono/node-server (app.request in tests): one shared bucket.
    return "unknown";
  }
}
