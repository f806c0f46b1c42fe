import { describe, expect, it } from "vitest";
import { registrationMac, SIGNATURE_MAX_SKEW_MS, signRequest, verifyRegistration, verifyRequest } from "./node-auth";

const secret = "a".repeat(32);
const other = "b".repeat(32);
const body = '{"streamId":"st_1","attempt":1}';

describe("request signatures between nodes", () => {
  it("accepts a request signed with the shared secret", () => {
    const header = signRequest(secret, "POST", "/v1/streams", body, 1_000_000);
    expect(header).toMatch(/^t=1000000,v1=[0-9a-f]{64}$/);
    expect(verifyRequest(secret, header, "post", "/v1/streams", body, 1_000_000 + 5000)).toBe("ok");
  });

  it("refuses a missing, malformed, stale, foreign or replayed-onto-another-request signature", () => {
    const now = 5_000_000;
    const header = signRequest(secret, "POST", "/v1/streams", body, now);
    expect(verifyRequest(secret, undefined, "POST", "/v1/streams", body, now)).toBe("missing");
    expect(verifyRequest(secret, "Bearer x", "POST", "/v1/streams", body, now)).toBe("malformed");
    expect(verifyRequest(secret, header, "POST", "/v1/streams", body, now + SIGNATURE_MAX_SKEW_MS + 1)).toBe("stale");
    expect(verifyRequest(secret, header, "POST", "/v1/streams", body, now - SIGNATURE_MAX_SKEW_MS - 1)).toBe("stale");
    expect(verifyRequest(other, header, "POST", "/v1/streams", body, now)).toBe("bad_signature");
    expect(verifyRequest(secret, header, "POST", "/v1/streams", body.replace("1}", "2}"), now)).toBe("bad_signature");
    expect(verifyRequest(secret, header, "POST", "/v1/other", body, now)).toBe("bad_signature");
    // A signature from another time does not fit this timestamp.
    const forged = header.replace(`t=${now}`, `t=${now + 1}`);
    expect(verifyRequest(secret, forged, "POST", "/v1/streams", body, now)).toBe("bad_signature");
  });
});

describe("registration MACs", () => {
  it("bind a node's name to its URL under the shared secret", () => {
    const mac = registrationMac(secret, "ai-1", "http://127.0.0.1:7001");
    expect(verifyRegistration(secret, "ai-1", "http://127.0.0.1:7001", mac)).toBe(true);
    expect(verifyRegistration(secret, "ai-1", "http://evil.example:7001", mac)).toBe(false);
    expect(verifyRegistration(secret, "ai-2", "http://127.0.0.1:7001", mac)).toBe(false);
    expect(verifyRegistration(other, "ai-1", "http://127.0.0.1:7001", mac)).toBe(false);
    expect(verifyRegistration(secret, "ai-1", "http://127.0.0.1:7001", "zz")).toBe(false);
    expect(verifyRegistration(secret, "ai-1", "http://127.0.0.1:7001", "")).toBe(false);
  });
});
