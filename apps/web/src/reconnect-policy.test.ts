import { describe, expect, it } from "vitest";
import { backoffDelay, ReconnectPolicy } from "./reconnect-policy";

describe("backoffDelay", () => {
  it("doubles from 250 ms and is capped at 10 s", () => {
    const max = (n: number) => backoffDelay(n, { random: () => 0.999999 });
    expect([0, 1, 2, 3, 4, 5, 6, 7, 10, 50].map(max)).toEqual([
      250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000,
    ]);
  });

  it("draws the delay from [ceiling/2, ceiling]", () => {
    expect(backoffDelay(0, { random: () => 0 })).toBe(125);
    expect(backoffDelay(0, { random: () => 0.5 })).toBe(188);
    expect(backoffDelay(6, { random: () => 0 })).toBe(5000);
    for (let attempt = 0; attempt < 12; attempt++) {
      const d = backoffDelay(attempt);
      const ceiling = Math.min(10_000, 250 * 2 ** attempt);
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });

  it("takes other start and cap values", () => {
    expect(backoffDelay(3, { startMs: 100, capMs: 500, random: () => 1 - 1e-9 })).toBe(500);
  });
});

describe("ReconnectPolicy", () => {
  it("grows with consecutive failures and starts over after a success", () => {
    const policy = new ReconnectPolicy({ random: () => 0 });
    expect([policy.nextDelay(1006), policy.nextDelay(), policy.nextDelay(1006)]).toEqual([125, 250, 500]);
    expect(policy.attempts).toBe(3);
    policy.succeeded();
    expect(policy.attempts).toBe(0);
    expect(policy.nextDelay(1006)).toBe(125);
  });

  it("reconnects at once (within 100 ms) after 1012, 1013 and 4409, then backs off as usual", () => {
    for (const code of [1012, 1013, 4409]) {
      const policy = new ReconnectPolicy({ random: () => 0.5 });
      expect(policy.nextDelay(code)).toBe(50);
      expect(policy.nextDelay(code)).toBe(375);
    }
  });

  it("waits at least a second after 4429", () => {
    const policy = new ReconnectPolicy({ random: () => 0 });
    expect(policy.nextDelay(4429)).toBe(1000);
    policy.nextDelay(4429);
    policy.nextDelay(4429);
    policy.nextDelay(4429);
    expect(policy.nextDelay(4429)).toBe(2000);
  });
});
