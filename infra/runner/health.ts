import { connect } from "node:net";

/** True when the URL answers at all (any HTTP status), or with a status below 500 when `strict`. */
export async function httpUp(url: string, strict = false): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await response.body?.cancel();
    return strict ? response.status < 500 : true;
  } catch {
    return false;
  }
}

/** The body of a 2xx answer, or undefined. */
export async function httpText(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    const text = await response.text();
    return response.ok ? text : undefined;
  } catch {
    return undefined;
  }
}

/** A command in RESP (the binary-safe form): a password may hold any character. */
const resp = (...args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/**
 * A raw PING to Redis (no client library needed), after AUTH when a password is given: true on +PONG. Without the
 * password a Redis with `requirepass` answers -NOAUTH, and this is false.
 */
export function redisPing(host: string, port: number, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
    socket.once("connect", () =>
      socket.write(`${password === undefined ? "" : resp("AUTH", password)}${resp("PING")}`),
    );
    socket.on("data", (data) => {
      received += data.toString();
      const lines = received.split("\r\n");
      const complete = lines.slice(0, -1);
      if (complete.some((line) => line.startsWith("-"))) return done(false);
      if (complete.length >= (password === undefined ? 1 : 2)) done(complete.at(-1) === "+PONG");
    });
  });
}
