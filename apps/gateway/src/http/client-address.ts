import { isIPv6 } from "node:net";
import { requestHeader } from "@chatgrid/broker";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";

const ADDRESS = /^[0-9A-Fa-f:.]{2,64}$/;

/**
 * The key an address is counted under. IPv4 as it is; IPv6 by its /64, since a single client is routinely given a
 * whole /64 and could otherwise take a fresh bucket per address (docs/security.md "Who is an address").
 */
export function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  const [head = "", tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = address.includes("::") && tail ? tail.split(":") : [];
  // An embedded IPv4 tail (a.b.c.d) is two groups; only the first four groups matter here.
  const groups = address.includes("::")
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * The client's address key, for the per-address limits (docs/security.md "Who is an address"). Behind nginx it is
 * the header nginx sets from the connection (`X-Real-IP $remote_addr`, which nginx overwrites, so a client cannot
 * choose it); gateways are never published directly. Without the header, the TCP peer's address.
 * `header` empty: always the TCP peer (a gateway reached directly by clients).
 */
export function clientAddress(c: Context, header: string): string {
  if (header) {
    const value = requestHeader(c, header.toLowerCase())?.trim();
    if (value && ADDRESS.test(value)) return addressKey(value);
  }
  try {
    const remote = getConnInfo(c).remote.address;
    return remote ? addressKey(remote) : "unknown";
  } catch {
    // Not served by @hono/node-server (app.request in tests): one shared bucket.
    return "unknown";
  }
}
