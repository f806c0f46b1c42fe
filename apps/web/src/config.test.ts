import { describe, expect, it } from "vitest";
import { resolveEndpoints } from "./config";

describe("resolveEndpoints", () => {
  it("uses the page's origin by default", () => {
    expect(resolveEndpoints(undefined, { protocol: "http:", host: "127.0.0.1:3000" })).toEqual({
      apiBase: "",
      wsUrl: "ws://127.0.0.1:3000/ws/chat",
    });
    expect(resolveEndpoints({}, { protocol: "https:", host: "chat.example.com" }).wsUrl).toBe(
      "wss://chat.example.com/ws/chat",
    );
  });

  it("uses config.json's apiBase for REST and the WebSocket", () => {
    expect(resolveEndpoints({ apiBase: "https://api.example.com/" }, { protocol: "http:", host: "x" })).toEqual({
      apiBase: "https://api.example.com",
      wsUrl: "wss://api.example.com/ws/chat",
    });
    expect(resolveEndpoints({ apiBase: "http://10.0.0.5:8080" }, { protocol: "http:", host: "x" }).wsUrl).toBe(
      "ws://10.0.0.5:8080/ws/chat",
    );
  });

  it("ignores an apiBase that is not an http(s) URL", () => {
    expect(resolveEndpoints({ apiBase: "javascript:alert(1)" }, { protocol: "http:", host: "h" }).apiBase).toBe("");
    expect(resolveEndpoints({ apiBase: 42 }, { protocol: "http:", host: "h" }).apiBase).toBe("");
  });
});
