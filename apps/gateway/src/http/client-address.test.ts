import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { addressKey, clientAddress } from "./client-address";

describe("addressKey: what a client address is counted under", () => {
  it("keeps IPv4 addresses, and IPv4-mapped IPv6 ones as IPv4", () => {
    expect(addressKey("203.0.113.7")).toBe("203.0.113.7");
    expect(addressKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
  });

  it("counts every address of one IPv6 /64 as one client", () => {
    const key = addressKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
    expect(key).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:2::1")).toBe(key);
    expect(addressKey("2001:0db8:0001:0002:ffff::")).toBe(key);
    expect(addressKey("2001:db8:1:3::1")).not.toBe(key);
    expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
  });
});

describe("clientAddress", () => {
  const app = new Hono();
  app.get("/", (c) => c.text(clientAddress(c, "x-real-ip")));
  const direct = new Hono();
  direct.get("/", (c) => c.text(clientAddress(c, "")));

  it("takes the address nginx sets, keyed", async () => {
    const response = await app.request("/", { headers: { "x-real-ip": "2001:db8:1:2::9" } });
    expect(await response.text()).toBe("2001:db8:1:2::/64");
    expect(await (await app.request("/", { headers: { "x-real-ip": "198.51.100.1" } })).text()).toBe("198.51.100.1");
  });

  it("ignores a header that is not an address, and any header when told to use the TCP peer", async () => {
    expect(await (await app.request("/", { headers: { "x-real-ip": "evil value" } })).text()).toBe("unknown");
    expect(await (await direct.request("/", { headers: { "x-real-ip": "198.51.100.1" } })).text()).toBe("unknown");
  });
});
