import { IncomingMessage, ServerResponse } from "node:http";

/**
 * What a handler reads from the Node request behind a Hono context, without Hono's web objects. On
 * `@hono/node-server`, `c.req.header()` builds a web `Headers` of every request header, `bodyLimit` and
 * `c.req.text()` an undici `Request` and a web stream, and `c.header()` a `Headers` (after the handler, the whole
 * undici `Response` again): each costs tens of µs on an idle node and far more under load, on the path of every new
 * chat (docs/benchmarks.md "Changes, before and after", 10). Under `app.request` (tests) there is no Node request,
 * and each function falls back to the web one.
 */

/** A request body read whole, or why not: longer than the bound, or the client went away before its end. */
export type BodyText = { ok: true; text: string } | { ok: false; reason: "too_large" | "incomplete" };

const TOO_LARGE: BodyText = { ok: false, reason: "too_large" };
const INCOMPLETE: BodyText = { ok: false, reason: "incomplete" };

/** What these functions need of a Hono context (structural, so this package does not depend on Hono). */
export interface RequestSource {
  /** `@hono/node-server` binds the Node request and response as `incoming` and `outgoing`; `app.request`, nothing. */
  env: unknown;
  req: { header(name: string): string | undefined };
}

/** A context whose body can be read. */
export interface BodySource extends RequestSource {
  req: RequestSource["req"] & { arrayBuffer(): Promise<ArrayBuffer> };
}

/** The Node request behind a context, when it is served by `@hono/node-server`. */
export function incomingOf(c: RequestSource): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  return incoming instanceof IncomingMessage ? incoming : undefined;
}

/** The Node response behind a context, when it is served by `@hono/node-server`. */
export function outgoingOf(c: RequestSource): ServerResponse | undefined {
  const outgoing = (c.env as { outgoing?: unknown } | undefined)?.outgoing;
  return outgoing instanceof ServerResponse ? outgoing : undefined;
}

/**
 * A request header by its lower-case name, as `c.req.header(name)` gives it (repeated ones joined by ", "; Node
 * keeps only the first of a repeated `authorization`, `content-length`, `host` and a few others).
 */
export function requestHeader(c: RequestSource, name: string): string | undefined {
  const incoming = incomingOf(c);
  if (!incoming) return c.req.header(name);
  const value = incoming.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** The declared length is over the bound: refused before a byte of the body is read. */
export function declaresMoreThan(contentLength: string | undefined, maxBytes: number): boolean {
  return contentLength !== undefined && Number(contentLength) > maxBytes;
}

/**
 * A request's body as text, at most `maxBytes`, whatever `Content-Length` says (a chunked body is counted as it
 * arrives), read from the `IncomingMessage` directly (55 µs through the web `Request`, 11 µs so, on an idle node).
 */
export function readBodyText(c: BodySource, maxBytes: number): Promise<BodyText> {
  const incoming = incomingOf(c);
  if (incoming) return readIncomingText(incoming, maxBytes); // which checks the declared length itself
  if (declaresMoreThan(c.req.header("content-length"), maxBytes)) return Promise.resolve(TOO_LARGE);
  return c.req.arrayBuffer().then(
    (body): BodyText =>
      body.byteLength > maxBytes ? TOO_LARGE : { ok: true, text: Buffer.from(body).toString("utf8") },
    () => INCOMPLETE,
  );
}

/**
 * Reads a Node request's body, keeping at most `maxBytes`: past that it stops keeping and lets the rest drain
 * unread (Node discards what nobody reads), so a long body costs no memory. A client that closes or errors before
 * the end gives `incomplete`.
 */
export function readIncomingText(incoming: IncomingMessage, maxBytes: number): Promise<BodyText> {
  if (declaresMoreThan(incoming.headers["content-length"], maxBytes)) return Promise.resolve(TOO_LARGE);
  if (incoming.readableEnded) return Promise.resolve(INCOMPLETE); // read by someone else: nothing left to read
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    const finish = (result: BodyText) => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onIncomplete);
      incoming.off("close", onIncomplete);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        finish(TOO_LARGE);
        incoming.resume();
        return;
      }
      parts.push(chunk);
    };
    const onEnd = () =>
      finish({ ok: true, text: (parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)).toString("utf8") });
    const onIncomplete = () => finish(INCOMPLETE);
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onIncomplete);
    incoming.on("close", onIncomplete);
  });
}
