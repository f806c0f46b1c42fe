import {
  type AiNodeRegistry,
  defaultStreamStoreOptions,
  type Logger,
  registrationTtlMs,
  SIGNATURE_HEADER,
  signRequest,
} from "@chatgrid/broker";
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
  /** A discovered node: since when the registry, read successfully, has not listed it (undefined while listed). */
  missingSince?: number;
}

export interface AiBalancerOptions {
  staticNodes: { name: string; url: string }[];
  registry?: AiNodeRegistry;
  /**
   * How long a discovered node that the registry stopped listing is kept while its probe passes (a Redis that lost
   * the registry, until the node's next heartbeat); one whose probe fails is dropped at once. The registration's
   * TTL (`registrationTtlMs` of the lease; by default of the default lease): a node that still runs is listed
   * again within it.
   */
  missingGraceMs?: number;
  dispatchTimeoutMs: number;
  /** Signs every dispatch (docs/security.md "Node credentials"). */
  clusterSecret: string;
  cooldownMs: number;
  probeIntervalMs: number;
  log: Logger;
  metrics: GatewayMetrics;
  /** The clock (ms); injected in tests. */
  now?: () => number;
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
  private readonly missingGraceMs: number;

  constructor(private readonly options: AiBalancerOptions) {
    // node:http with a keep-alive agent: a dispatch reuses a connection (docs/benchmarks.md, first token).
    this.transport = options.fetch ? fetchTransport(options.fetch) : nodeHttpTransport(options.http);
    this.missingGraceMs = options.missingGraceMs ?? registrationTtlMs(defaultStreamStoreOptions.leaseMs);
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

  /**
   * Picks up registered nodes, probes every node, and forgets discovered ones the registry no longer lists once
   * their probe fails (a node that left drains, and answers 503) or once missingGraceMs has passed. Not at the
   * first read that misses them: a Redis that restarted without its data lists no node until the next heartbeats,
   * and forgetting them then refused every chat with `no_ai_node` meanwhile.
   */
  async refresh(): Promise<void> {
    const now = this.now();
    let listed: Set<string> | undefined;
    if (this.options.registry) {
      try {
        const live = await this.options.registry.live();
        this.options.metrics.aiRegistrationsRefused.set(this.options.registry.lastRefused);
        listed = new Set(live.map((n) => n.url));
        for (const node of live) {
          const known = this.nodes.get(node.url);
          if (known) {
            known.name = node.name;
            known.missingSince = undefined;
          } else this.nodes.set(node.url, { ...node, healthy: true, downUntil: 0, static: false });
        }
        for (const [url, node] of this.nodes) if (!node.static && !listed.has(url)) node.missingSince ??= now;
      } catch {
        // Redis away: keep the nodes we know, and start no node's grace (the registry was not read).
      }
    }
    await Promise.all(this.list().map((node) => this.probe(node)));
    if (listed === undefined) return;
    for (const [url, node] of this.nodes) {
      if (node.missingSince === undefined || listed.has(url)) continue;
      if (!node.healthy || now - node.missingSince >= this.missingGraceMs) this.nodes.delete(url);
    }
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
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
