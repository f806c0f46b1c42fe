import { type AiNodeRegistry, type Logger, SIGNATURE_HEADER, signRequest } from "@chatgrid/broker";
import type { DispatchRequest } from "@chatgrid/protocol";
import type { GatewayMetrics } from "./metrics";
import { fetchTransport, type NodeHttpOptions, type NodeTransport, nodeHttpTransport } from "./node-http";

export interface AiNodeState {
  name: string;
  url: string;
  /** Result of the last active probe or dispatch. */
  healthy: boolean;
  /** Passive health: after a failed dispatch the node is skipped until this time (unless every node is down). */
  downUntil: number;
  /** From the static list (kept when it stops heartbeating) or discovered in Redis. */
  static: boolean;
}

export interface AiBalancerOptions {
  staticNodes: { name: string; url: string }[];
  registry?: AiNodeRegistry;
  dispatchTimeoutMs: number;
  /** Signs every dispatch (docs/security.md "Node credentials"). */
  clusterSecret: string;
  cooldownMs: number;
  probeIntervalMs: number;
  log: Logger;
  metrics: GatewayMetrics;
  /** Injected in tests: calls go through it instead of `node:http`. */
  fetch?: typeof fetch;
  /** Bounds of the `node:http` keep-alive pool (connections per AI node); defaults NODE_HTTP_DEFAULTS. */
  http?: NodeHttpOptions;
  /** Called when a node changes between healthy and down (for events). */
  onHealthChange?: (node: AiNodeState, healthy: boolean, reason?: string) => void;
}

export type DispatchOutcome = { ok: true; node: string; tried: number } | { ok: false; tried: number };

/**
 * Round-robin over healthy AI nodes; a failed try (connect error, 5xx, timeout) moves to the next node, at most one
 * try per node. Passive health marks a failing node down for a cool-down; an active probe brings it back.
 */
export class AiBalancer {
  private readonly nodes = new Map<string, AiNodeState>();
  private cursor = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly transport: NodeTransport;

  constructor(private readonly options: AiBalancerOptions) {
    // node:http with a keep-alive agent: a dispatch reuses a connection (docs/benchmarks.md, first token).
    this.transport = options.fetch ? fetchTransport(options.fetch) : nodeHttpTransport(options.http);
    for (const node of options.staticNodes) {
      this.nodes.set(node.url, { ...node, healthy: true, downUntil: 0, static: true });
    }
  }

  list(): AiNodeState[] {
    return [...this.nodes.values()];
  }

  start(): void {
    void this.refresh();
    this.probeTimer = setInterval(() => void this.refresh(), this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
  }

  /** Closes the pooled connections to the AI nodes (after the last dispatch: once the server has closed). */
  close(): void {
    this.stop();
    this.transport.close();
  }

  /** Dispatches an attempt; `avoid` names a node to try last (the one that just lost the stream). */
  async dispatch(request: DispatchRequest, avoid?: string): Promise<DispatchOutcome> {
    const order = this.order(avoid);
    let tried = 0;
    for (const node of order) {
      if (tried > 0) this.options.metrics.dispatchRetries.inc();
      tried++;
      const result = await this.tryNode(node, request);
      if (result === "accepted") {
        this.options.metrics.dispatches.inc({ result: "accepted" });
        return { ok: true, node: node.name, tried };
      }
      if (result === "gone") break;
    }
    this.options.metrics.dispatches.inc({ result: "no_ai_node" });
    return { ok: false, tried };
  }

  /** Healthy nodes in round-robin order first, then the ones marked down (a stale mark must not refuse a chat). */
  private order(avoid?: string): AiNodeState[] {
    const now = Date.now();
    const all = this.list();
    if (all.length === 0) return [];
    const start = this.cursor++ % all.length;
    const rotated = [...all.slice(start), ...all.slice(0, start)];
    const up = rotated.filter((n) => n.healthy && n.downUntil <= now && n.name !== avoid);
    const down = rotated.filter((n) => !up.includes(n) && n.name !== avoid);
    return [...up, ...down, ...rotated.filter((n) => n.name === avoid)];
  }

  private async tryNode(node: AiNodeState, request: DispatchRequest): Promise<"accepted" | "failed" | "gone"> {
    try {
      const body = JSON.stringify(request);
      const { status, text: answer } = await this.transport.call(`${node.url}/v1/streams`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: signRequest(this.options.clusterSecret, "POST", "/v1/streams", body),
        },
        body,
        timeoutMs: this.options.dispatchTimeoutMs,
      });
      // 409 means the stream already runs (a retried dispatch) or moved on: either way nothing more to start.
      if (status === 202 || status === 409) {
        this.markUp(node);
        return "accepted";
      }
      // The stream is gone (not a wrong URL, whose 404 is route_not_found): no other node can run it either.
      if (status === 404 && answer.includes('"stream_unknown"')) return "gone";
      this.markDown(node, `HTTP ${status}`);
      return "failed";
    } catch (error) {
      this.markDown(node, error instanceof Error ? error.message : String(error));
      return "failed";
    }
  }

  private markUp(node: AiNodeState): void {
    if (!node.healthy) {
      this.options.log.info({ aiNode: node.name }, "AI node up");
      this.options.onHealthChange?.(node, true);
    }
    node.healthy = true;
    node.downUntil = 0;
    this.options.metrics.aiNodeHealthy.set({ node: node.name }, 1);
  }

  private markDown(node: AiNodeState, reason: string): void {
    if (node.healthy) {
      this.options.log.warn({ aiNode: node.name, reason }, "AI node down");
      this.options.onHealthChange?.(node, false, reason);
    }
    node.healthy = false;
    node.downUntil = Date.now() + this.options.cooldownMs;
    this.options.metrics.aiNodeHealthy.set({ node: node.name }, 0);
  }

  /** Picks up registered nodes, forgets discovered ones that stopped heartbeating, and probes every node. */
  async refresh(): Promise<void> {
    if (this.options.registry) {
      try {
        const live = await this.options.registry.live();
        this.options.metrics.aiRegistrationsRefused.set(this.options.registry.lastRefused);
        const liveUrls = new Set(live.map((n) => n.url));
        for (const node of live) {
          const known = this.nodes.get(node.url);
          if (known) known.name = node.name;
          else this.nodes.set(node.url, { ...node, healthy: true, downUntil: 0, static: false });
        }
        for (const [url, node] of this.nodes) if (!node.static && !liveUrls.has(url)) this.nodes.delete(url);
      } catch {
        // Redis away: keep the nodes we know.
      }
    }
    await Promise.all(this.list().map((node) => this.probe(node)));
  }

  private async probe(node: AiNodeState): Promise<void> {
    try {
      const { status } = await this.transport.call(`${node.url}/health`, {
        method: "GET",
        timeoutMs: 1000,
        readBody: false,
      });
      if (status >= 200 && status < 300) this.markUp(node);
      else this.markDown(node, `health ${status}`);
    } catch (error) {
      this.markDown(node, error instanceof Error ? error.message : String(error));
    }
  }
}
