import { IncomingMessage } from "node:http";

/** A request body read whole, or why not: longer than the bound, or the client went away before its end. */
export type BodyText = { ok: true; text: string } | { ok: false; reason: "too_large" | "incomplete" };

const TOO_LARGE: BodyText = { ok: false, reason: "too_large" };
const INCOMPLETE: BodyText = { ok: false, reason: "incomplete" };

/** What `readBodyText` needs of a Hono context (structural, so this package does not depend on Hono). */
export interface BodySource {
  /** `@hono/node-server` binds the Node request as `incoming`; `app.request` in tests binds nothing. */
  env: unknown;
  req: { header(name: string): string | undefined; arrayBuffer(): Promise<ArrayBuffer> };
}

/** The declared length is over the bound: refused before a byte of the body is read. */
export function declaresMoreThan(contentLength: string | undefined, maxBytes: number): boolean {
  return contentLength !== undefined && Number(contentLength) > maxBytes;
}

/**
 * A request's body as text, at most `maxBytes`, whatever `Content-Length` says (a chunked body is counted as it
 * arrives). On Node it reads the `IncomingMessage` directly: going through the web `Request` (what Hono's
 * `bodyLimit` and `c.req.text()` do on `@hono/node-server`) builds an undici Request and a web stream per request,
 * which cost about 45 µs on an idle node and 0.5 ms under load, on the first token's path (docs/benchmarks.md
 * "Changes, before and after", 10).
 */
export function readBodyText(c: BodySource, maxBytes: number): Promise<BodyText> {
  if (declaresMoreThan(c.req.header("content-length"), maxBytes)) return Promise.resolve(TOO_LARGE);
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (incoming instanceof IncomingMessage) return readIncomingText(incoming, maxBytes);
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
