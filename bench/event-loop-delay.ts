/**
 * The event-loop delay of the cluster's Node processes over a window (docs/benchmarks.md, "Scenarios"), read from
 * each node's own /metrics: prom-client's default metrics keep a `monitorEventLoopDelay` histogram that is reset
 * at every scrape, so a scrape at the window's start and one at its end give the delay over the window. It says
 * how long work that became ready waited behind other work in that process: the queueing a request meets there.
 *
 * prom-client samples with a 10 ms timer (its `eventLoopMonitoringPrecision` default) and Node's histogram records
 * the whole time between two ticks, the timer's own 10 ms included (an idle node reads p50 10.2, min 9.1 ms), so
 * the timer's period is subtracted here: what is left is the delay beyond it, clamped at 0.
 */
import type { ScenarioCluster } from "./cluster";
import { sampleValue } from "./metrics-text";
import { round } from "./stats";

export interface EventLoopDelay {
  /** p99 and max of the delay over the window, ms. */
  p99: number;
  max: number;
}

export type EventLoopDelays = Record<string, EventLoopDelay>;

/** prom-client's sampling period, included in every value its histogram holds (ms). */
const SAMPLING_PERIOD_MS = 10;

const beyondPeriod = (seconds: number) => round(Math.max(0, seconds * 1000 - SAMPLING_PERIOD_MS), 2);

function metricsUrls(cluster: ScenarioCluster): Record<string, string> {
  const { gateways, aiNodes } = cluster.runner.topology;
  return Object.fromEntries([
    ...gateways.map((g) => [g.name, `http://${g.host}:${g.metricsPort}/metrics`]),
    ...aiNodes.map((n) => [n.name, `http://${n.host}:${n.metricsPort}/metrics`]),
  ]);
}

async function scrape(url: string): Promise<EventLoopDelay> {
  const response = await fetch(url);
  const text = await response.text();
  const p99 = sampleValue(text, "nodejs_eventloop_lag_p99_seconds");
  const max = sampleValue(text, "nodejs_eventloop_lag_max_seconds");
  if (!response.ok || p99 === undefined || max === undefined) {
    throw new Error(`${url}: no event-loop delay in its metrics (status ${response.status})`);
  }
  return { p99: beyondPeriod(p99), max: beyondPeriod(max) };
}

/** Scrapes every node (which resets its histogram); the result is the delay since the previous scrape. */
export async function eventLoopDelays(cluster: ScenarioCluster): Promise<EventLoopDelays> {
  const urls = Object.entries(metricsUrls(cluster));
  const values = await Promise.all(urls.map(([, url]) => scrape(url)));
  return Object.fromEntries(urls.map(([name], i) => [name, values[i]!]));
}

/** The worst node's figures: the p99 and max of whichever nodes delayed most. */
export function worstDelay(delays: EventLoopDelays): EventLoopDelay {
  const all = Object.values(delays);
  return { p99: Math.max(0, ...all.map((d) => d.p99)), max: Math.max(0, ...all.map((d) => d.max)) };
}
