import { describe, expect, it } from "vitest";
import { isOriginAllowed } from "./origin";

const allowed = ["http://localhost:3000", "http://127.0.0.1:3000"];

describe("isOriginAllowed", () => {
  it("allows requests without Origin (not a browser)", () => {
    expect(isOriginAllowed(undefined, "localhost:8080", allowed)).toBe(true);
    expect(isOriginAllowed("", "localhost:8080", allowed)).toBe(true);
  });

  it("allows an allow-listed origin from any host", () => {
    expect(isOriginAllowed("http://localhost:3000", "localhost:8080", allowed)).toBe(true);
    expect(isOriginAllowed("http://127.0.0.1:3000", undefined, allowed)).toBe(true);
  });

  it("allows same-origin requests (the Origin's host:port is the Host header)", () => {
    expect(isOriginAllowed("http://localhost:8080", "localhost:8080", allowed)).toBe(true);
    expect(isOriginAllowed("https://chat.example", "chat.example", allowed)).toBe(true);
    // Default ports are not part of URL.host.
    expect(isOriginAllowed("https://chat.example:443", "chat.example", allowed)).toBe(true);
  });

  it("refuses other origins", () => {
    expect(isOriginAllowed("https://evil.example", "chat.example", allowed)).toBe(false);
    expect(isOriginAllowed("http://localhost:3001", "localhost:8080", allowed)).toBe(false);
    expect(isOriginAllowed("http://localhost:8081", "localhost:8080", allowed)).toBe(false);
    expect(isOriginAllowed("http://chat.example.evil.example", "chat.example", allowed)).toBe(false);
    // Prefix tricks do not match an allow-list entry.
    expect(isOriginAllowed("http://localhost:30000", "x", allowed)).toBe(false);
    expect(isOriginAllowed("http://localhost:3000.evil.example", "x", allowed)).toBe(false);
  });

  it("refuses a cross-site origin when the Host header is missing", () => {
    expect(isOriginAllowed("https://evil.example", undefined, allowed)).toBe(false);
  });

  it("refuses opaque and malformed origins", () => {
    expect(isOriginAllowed("null", "localhost:8080", allowed)).toBe(false);
    expect(isOriginAllowed("not a url", "localhost:8080", allowed)).toBe(false);
    expect(isOriginAllowed("file://", "localhost:8080", allowed)).toBe(false);
    expect(isOriginAllowed("http://", "localhost:8080", allowed)).toBe(false);
  });

  it("'*' in the allow-list allows every origin", () => {
    expect(isOriginAllowed("https://anything.example", "chat.example", ["*"])).toBe(true);
    expect(isOriginAllowed("null", "chat.example", ["*"])).toBe(true);
  });

  it("an empty allow-list still allows same-origin and refuses the rest", () => {
    expect(isOriginAllowed("http://gw:8080", "gw:8080", [])).toBe(true);
    expect(isOriginAllowed("http://localhost:3000", "gw:8080", [])).toBe(false);
  });
});
