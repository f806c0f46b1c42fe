/**
 * The scenarios of docs/benchmarks.md ("Scenarios"), run after the comparison: a gateway killed under live streams
 * (bench/failover.ts) and the time added to the first token (bench/first-token.ts), each on fresh clusters of the
 * process runner. Their results go into the run's JSON beside the comparison's, under `scenarios`.
 */

import { CAPACITY_DEFAULTS, type CapacityOptions, type CapacityResults, runCapacity } from "./capacity";
import { FAILOVER_DEFAULTS, type FailoverOptions, type FailoverResults, runFailover } from "./failover";
import { FIRST_TOKEN_DEFAULTS, type FirstTokenOptions, type FirstTokenResults, runFirstToken } from "./first-token";
import type { BenchResults } from "./harness";
import type { ScenarioName } from "./protocol";
import { FLOOR_DEFAULTS, FLOOR_VARIANTS, type FloorOptions, type FloorResults, runRedisFloor } from "./redis-floor";

export interface ScenarioResults {
  failover?: FailoverResults;
  firstToken?: FirstTokenResults;
  redisFloor?: FloorResults;
  capacity?: CapacityResults;
}

/** A run's results: the comparison's, and the scenarios' when they ran. */
export type RunResults = BenchResults & { scenarios?: ScenarioResults };

export interface ScenarioOptions {
  failover: Omit<FailoverOptions, "log">;
  firstToken: Omit<FirstTokenOptions, "log">;
  redisFloor: FloorOptions;
  capacity: Omit<CapacityOptions, "log">;
}

export const SCENARIO_DEFAULTS: ScenarioOptions = {
  failover: FAILOVER_DEFAULTS,
  firstToken: FIRST_TOKEN_DEFAULTS,
  redisFloor: FLOOR_DEFAULTS,
  capacity: CAPACITY_DEFAULTS,
};

/** Tiny loads: the whole path of each scenario checked end to end in a few seconds (the smoke mode). */
export const SCENARIO_SMOKE: ScenarioOptions = {
  failover: {
    ...FAILOVER_DEFAULTS,
    streams: 20,
    subnets: 20,
    tokensPerSecond: 20,
    tokens: 60,
    baselineMs: 500,
    repeats: 1,
  },
  firstToken: {
    ...FIRST_TOKEN_DEFAULTS,
    rate: 10,
    warmupSeconds: 0.5,
    seconds: 1.5,
    sockets: 20,
    subnets: 10,
    tokens: 10,
    repeats: 1,
  },
  redisFloor: { streams: 50, rate: 20, seconds: 1, rounds: 1 },
  capacity: { ...CAPACITY_DEFAULTS, sockets: 200, holdMs: 500 },
};

export async function runScenarios(
  names: ScenarioName[],
  options: ScenarioOptions,
  log: (line: string) => void,
): Promise<ScenarioResults> {
  const results: ScenarioResults = {};
  for (const name of names) {
    if (name === "failover") {
      const o = options.failover;
      log(
        `scenario failover: ${o.streams} sockets over ${o.subnets} subnets, ${o.gateways} gateways, ${o.aiNodes} AI nodes, ` +
          `${o.tokens} tokens at ${o.tokensPerSecond}/s per answer; ${o.repeats} repeats`,
      );
      results.failover = await runFailover({ ...o, log });
    } else if (name === "capacity") {
      const o = options.capacity;
      log(
        `scenario capacity: ${o.sockets > 0 ? o.sockets : `up to ${o.target}`} idle sockets on one gateway, held ${o.holdMs / 1000} s`,
      );
      results.capacity = await runCapacity({ ...o, log });
    } else if (name === "redis-floor") {
      const o = options.redisFloor;
      log(
        `scenario redis-floor: ${o.streams} streams at ${o.rate} chunks/s for ${o.seconds} s per variant ` +
          `(${FLOOR_VARIANTS.join("; ")}); ${o.rounds} rounds`,
      );
      results.redisFloor = await runRedisFloor(o, log);
    } else {
      const o = options.firstToken;
      log(
        `scenario first-token: ${o.rate} new chats/s for ${o.warmupSeconds} + ${o.seconds} s over ${o.sockets} sessions, ` +
          `${o.gateways} gateways, ${o.aiNodes} AI nodes; ${o.repeats} repeats`,
      );
      results.firstToken = await runFirstToken({ ...o, log });
    }
  }
  return results;
}

/** What a smoke run of the scenarios must show: each ran, and everything it checks held (no speed asserted). */
export function scenarioSmokeProblems(results: ScenarioResults | undefined, names: ScenarioName[]): string[] {
  const problems: string[] = [];
  if (names.includes("failover")) {
    const run = results?.failover?.runs[0];
    if (!run) problems.push("failover: no run");
    else {
      if (run.onVictim === 0 || run.resumed !== run.onVictim)
        problems.push(`failover: ${run.resumed} of ${run.onVictim} resumed`);
      for (const [what, n] of [
        ["seq violations", run.violations],
        ["resume gaps", run.resumeGaps],
        ["not done", run.notDone],
        ["text mismatches", run.textMismatches],
        ["other gateways' sockets closed", run.othersClosed],
      ] as const)
        if (n !== 0) problems.push(`failover: ${n} ${what}`);
      if (!(run.redis.commandsPerResume > 0)) problems.push("failover: no Redis commands counted per resume");
    }
  }
  if (names.includes("first-token")) {
    const run = results?.firstToken?.runs[0];
    if (!run) problems.push("first-token: no run");
    else {
      if (run.chats === 0 || run.failed !== 0) problems.push(`first-token: ${run.failed} of ${run.chats} failed`);
      if (run.violations !== 0) problems.push(`first-token: ${run.violations} violations`);
      if (!(run.addedMs.p50 > 0)) problems.push(`first-token: p50 ${run.addedMs.p50}`);
    }
  }
  if (names.includes("capacity")) {
    const c = results?.capacity;
    if (!c) problems.push("capacity: no run");
    else if (!c.pass) problems.push(`capacity: ${c.opened} of ${c.requested} opened, ${c.heldAfterHold} held`);
  }
  if (names.includes("redis-floor")) {
    const variants = results?.redisFloor?.variants ?? [];
    if (variants.length !== FLOOR_VARIANTS.length) problems.push(`redis-floor: ${variants.length} variants measured`);
    for (const v of variants) if (!(v.median > 0)) problems.push(`redis-floor: ${v.variant} measured ${v.median} µs`);
  }
  return problems;
}
