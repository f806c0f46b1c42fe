import type { AddressInfo } from "node:net";
import { outgoingOf } from "@chatgrid/broker";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiCors, CORS_MAX_AGE_SECONDS } from "./cors";

const ALLOWED = "https://chat.example";

function app() {
  const hono = new Hono();
  hono.use("/api/*", apiCors([ALLOWED]));
  hono.post("/api/chat", (c) => c.json({ accepted: true }, 202));
  hono.get("/api/served-by", (c) => c.json({ nodeResponse: outgoingOf(c) !== undefined }));
  hono.get("/api/limited", (c) => c.json({ error: { code: "rate_limited" } }, 429, { "retry-after": "3" }));
  return hono;
}

/** The same cases on both paths: `app.request` (c.header) and a real Node server (the Node response's headers). */
const paths: [string, () => (path: string, init?: RequestInit) => Promise<Response>][] = [
  ["app.request", () => (path, init) => Promise.resolve(app().request(path, init))],
];

let server: ReturnType<typeof serve> | undefined;
let base = "";
beforeAll(async () => {
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app().fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      base = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});
afterAll(() => {
  server?.close();
});
paths.push(["@hono/node-server", () => (path, init) => fetch(`${base}${path}`, init)]);

describe.each(paths)("apiCors through %s", (name, client) => {
  it("runs on the path it names (the Node response's headers on a Node server, c.header under app.request)", async () => {
    const response = await client()("/api/served-by", { headers: { origin: ALLOWED } });
    expect(await response.json()).toEqual({ nodeResponse: name === "@hono/node-server" });
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
  });

  it("an allowed origin gets its origin back and Vary: Origin; the body and status are the handler's", async () => {
    const response = await client()("/api/chat", { method: "POST", headers: { origin: ALLOWED } });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: true });
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(response.headers.get("vary")).toBe("Origin");
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("another origin, or none, gets no allow header, and still Vary: Origin (a cache must not share them)", async () => {
    for (const headers of [{ origin: "https://evil.example" }, {}] as Record<string, string>[]) {
      const response = await client()("/api/chat", { method: "POST", headers });
      expect(response.status).toBe(202);
      expect(response.headers.get("access-control-allow-origin")).toBeNull();
      expect(response.headers.get("vary")).toBe("Origin");
    }
  });

  it("keeps the handler's own headers (Retry-After) beside the CORS ones", async () => {
    const response = await client()("/api/limited", { headers: { origin: ALLOWED } });
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("3");
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
  });

  it("a preflight of an allowed origin: 204 with methods, the requested headers and max-age; others get none", async () => {
    const preflight = await client()("/api/chat", {
      method: "OPTIONS",
      headers: {
        origin: ALLOWED,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET,POST");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("authorization,content-type");
    expect(preflight.headers.get("access-control-max-age")).toBe(String(CORS_MAX_AGE_SECONDS));
    expect(preflight.headers.get("vary")).toBe("Origin, Access-Control-Request-Headers");
    const refused = await client()("/api/chat", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(refused.status).toBe(204);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    expect(refused.headers.get("access-control-allow-methods")).toBeNull();
  });
});
