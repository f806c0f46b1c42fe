import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ProviderError } from "./providers/provider";
import { errorDetail, USER_ERROR_MESSAGES, userError } from "./user-errors";

describe("user-facing answer errors", () => {
  it("has one fixed message per code, with nothing a provider or Redis could have put in it", () => {
    expect(Object.keys(USER_ERROR_MESSAGES).sort()).toEqual([
      "internal_error",
      "provider_error",
      "provider_incomplete",
      "provider_rate_limited",
      "provider_timeout",
    ]);
    for (const [code, message] of Object.entries(USER_ERROR_MESSAGES)) {
      expect(message.length).toBeGreaterThan(10);
      expect(message, code).not.toMatch(/\d|https?:|sk-|cg:/);
    }
    expect(userError("provider_rate_limited")).toEqual({
      code: "provider_rate_limited",
      message: USER_ERROR_MESSAGES.provider_rate_limited,
    });
  });

  it("docs/protocol.md lists every message as sent", () => {
    const doc = readFileSync(new URL("../../../docs/protocol.md", import.meta.url), "utf8").replace(/\s+/g, " ");
    for (const [code, message] of Object.entries(USER_ERROR_MESSAGES)) {
      expect(doc, code).toContain(`\`${code}\``);
      expect(doc, code).toContain(`"${message}"`);
    }
  });

  it("keeps the detail for the logs, bounded in length", () => {
    expect(errorDetail(new ProviderError("provider_error", "401 Incorrect API key provided: sk-ab***cd"))).toBe(
      "401 Incorrect API key provided: sk-ab***cd",
    );
    expect(errorDetail("plain")).toBe("plain");
    expect(errorDetail(new Error("x".repeat(5000))).length).toBeLessThanOrEqual(501);
  });
});
