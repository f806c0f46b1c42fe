import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { ClusterRunner } from "./cluster-runner";

/**
 * ports.ts itself says it: the OS can hand out the same free port twice across calls (Linux starts its search for a
 * free ephemeral port at a random offset on every bind to port 0). The runner asks twice, once for the public ports
 * and once for the internal ones; this replays the unlucky draw deterministically, passing everything else through.
 */
const draw = vi.hoisted(() => ({ repeat: false, calls: [] as number[][] }));
vi.mock("./ports", async (importOriginal) => {
  const real = await importOriginal<typeof import("./ports")>();
  return {
    ...real,
    freePorts: async (count: number, host?: string): Promise<number[]> => {
      const ports = await real.freePorts(count, host);
      const first = draw.calls[0];
      // The second draw starts with the first port of the first draw again, as the OS may return it.
      if (draw.repeat && draw.calls.length === 1 && first && !ports.includes(first[0]!)) ports[0] = first[0]!;
      draw.calls.push(ports);
      return ports;
    },
  };
});

const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-runner-ports-test-"));
let runner: ClusterRunner | undefined;
afterAll(async () => {
  await runner?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("ClusterRunner port allocation", () => {
  it("public and internal ports never overlap, even when the OS hands out a free port twice across calls", async () => {
    draw.repeat = true;
    try {
      runner = await ClusterRunner.start({
        stateDir,
        topology: { gatewayNodes: 1, aiNodes: 1, nodeEnv: { SHUTDOWN_GRACE_MS: "2000", LOG_LEVEL: "warn" } },
        publicPortsMayBeFree: true,
        restart: false,
        nginx: true,
      });
    } finally {
      draw.repeat = false;
    }
    // One allocation for every port: the unlucky draw across calls cannot happen any more.
    expect(draw.calls.length).toBe(1);
    const { gateways, aiNodes } = runner.topology;
    const ports = [
      runner.ports.http,
      runner.ports.web,
      runner.ports.metrics,
      Number(new URL(runner.redisUrl).port),
      ...gateways.flatMap((g) => [g.port, g.metricsPort]),
      ...aiNodes.map((n) => n.port),
    ];
    expect(new Set(ports).size, `ports ${ports.join(", ")}`).toBe(ports.length);
    expect((await fetch(`${runner.urls.chat}/api/health`)).status).toBe(200);
  });
});
