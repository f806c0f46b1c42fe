import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, freePorts, isPortFree } from "./ports";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** Binds `port` (0: any) on loopback and keeps it until the end of the test. */
function hold(port = 0, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    servers.push(server);
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : 0);
    });
  });
}

describe("ports", () => {
  it("freePort returns a port in range that can be bound right away", async () => {
    const port = await freePort();
    expect(Number.isInteger(port)).toBe(true);
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThanOrEqual(65_535);
    await expect(hold(port)).resolves.toBe(port);
  });

  it("freePorts returns the requested number of distinct ports, each free", async () => {
    const ports = await freePorts(20);
    expect(ports).toHaveLength(20);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThan(0);
      expect(await isPortFree(port)).toBe(true);
    }
    // And all of them can be held at the same time.
    expect(await Promise.all(ports.map((port) => hold(port)))).toEqual(ports);
  });

  it("freePorts(0) is empty", async () => {
    expect(await freePorts(0)).toEqual([]);
  });

  it("isPortFree is false for a port held open, and true again once it is released", async () => {
    const port = await hold();
    expect(await isPortFree(port)).toBe(false);
    const server = servers.pop()!;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await isPortFree(port)).toBe(true);
  });

  it("isPortFree is false for a port held on all interfaces", async () => {
    const port = await hold(0, "0.0.0.0");
    expect(await isPortFree(port)).toBe(false);
  });

  it("isPortFree leaves the port free (it does not keep what it bound)", async () => {
    const port = await freePort();
    expect(await isPortFree(port)).toBe(true);
    expect(await isPortFree(port)).toBe(true);
    await expect(hold(port)).resolves.toBe(port);
  });
});
