/**
 * `npm run bench [-- flags]`: the comparison of docs/benchmarks.md. Bare relay, Socket.IO with its Redis adapter,
 * and chatgrid, each behind the same rendered nginx with its own Redis, publisher and clients in their own
 * processes; fixed loads with repeats, a knee search, memory per idle socket. Writes bench/results/<stamp>.json,
 * .md and -figures/*.svg.
 *
 *   npm run bench                              the full run (~10 min on 2 cores)
 *   npm run bench -- --smoke                   every system at a tiny load, checked end to end (~20 s)
 *   npm run bench -- --systems bare,chatgrid --loads 500 --repeats 1 --seconds 5 --no-knee --idle 0
 *   npm run bench -- --docs [results.json]     write a run's tables and figures into docs/benchmarks.md
 *   npm run bench -- --profile [--loads 500]   chatgrid's gateway under --cpu-prof, summarised
 *   npm run bench -- --scenarios failover,first-token,redis-floor,capacity   only the scenarios
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../infra/runner";
import { type BenchOptions, runBench, smokeProblems } from "./harness";
import { profileMarkdown, summarizeProfile } from "./profile";
import { isScenario, isSystem, SCENARIOS, type ScenarioName, SYSTEMS, type SystemName } from "./protocol";
import { latestResults, RESULTS_DIR, renderMarkdown, stamp, updateDocs, writeRun } from "./report";
import {
  type RunResults,
  runScenarios,
  SCENARIO_DEFAULTS,
  SCENARIO_SMOKE,
  type ScenarioOptions,
  scenarioSmokeProblems,
} from "./scenarios";
import { SMOKE_OPTIONS } from "./smoke";

const USAGE = `npm run bench -- [--smoke] [--systems bare,socketio,chatgrid] [--loads 500,1000,1500] [--rate 20]
                 [--repeats 3] [--seconds 10] [--warmup 3] [--idle 5000] [--no-knee] [--knee-seconds 6]
                 [--knee-probes 4] [--knee-max 4000] [--clients 2] [--out DIR] [--write-docs]
                 [--scenarios failover,first-token,redis-floor,capacity|none] [--scenario-repeats 3] [--failover-streams 500]
                 [--first-token-rate 50] [--first-token-warmup 10] [--first-token-seconds 15]
       npm run bench -- --scenarios failover,first-token,redis-floor,capacity   (only the scenarios; --systems too: both)
       npm run bench -- --docs [results.json]
       npm run bench -- --profile [--loads 500] [--seconds 10]`;

const positive = (name: string, value: string | undefined, fallback: number, allowZero = false): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    throw new Error(`--${name}: expected a number, got "${value}"\n${USAGE}`);
  return n;
};

const list = (value: string | undefined): string[] | undefined =>
  value
    ?.split(",")
    .map((v) => v.trim())
    .filter(Boolean);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      smoke: { type: "boolean" },
      docs: { type: "boolean" },
      "write-docs": { type: "boolean" },
      profile: { type: "boolean" },
      systems: { type: "string" },
      loads: { type: "string" },
      rate: { type: "string" },
      repeats: { type: "string" },
      seconds: { type: "string" },
      warmup: { type: "string" },
      idle: { type: "string" },
      "no-knee": { type: "boolean" },
      "knee-seconds": { type: "string" },
      "knee-probes": { type: "string" },
      "knee-max": { type: "string" },
      clients: { type: "string" },
      out: { type: "string" },
      scenarios: { type: "string" },
      "scenario-repeats": { type: "string" },
      "failover-streams": { type: "string" },
      "first-token-rate": { type: "string" },
      "first-token-warmup": { type: "string" },
      "first-token-seconds": { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.docs) {
    const file = positionals[0] ?? latestResults();
    const results = JSON.parse(readFileSync(file, "utf8")) as RunResults;
    if (results.points.length === 0) throw new Error(`${file} has no comparison (a run of the scenarios alone)`);
    for (const written of updateDocs(results)) console.log(`wrote ${relative(REPO_ROOT, written)}`);
    return;
  }
  const out = values.out ?? RESULTS_DIR;
  const log = (line: string) => console.log(line);
  const scenarioList = values.scenarios === "none" ? [] : list(values.scenarios);
  const unknownScenarios = (scenarioList ?? []).filter((s) => !isScenario(s));
  if (unknownScenarios.length > 0)
    throw new Error(`unknown scenario ${unknownScenarios.join(", ")} (${SCENARIOS.join(", ")}, or none)`);
  // The scenarios run in the full run and the smoke; a custom run (--systems, --loads, …) names them to run them.
  const customComparison =
    values.systems !== undefined ||
    values.loads !== undefined ||
    ["rate", "repeats", "seconds", "warmup", "idle", "no-knee", "clients"].some(
      (k) => values[k as keyof typeof values] !== undefined,
    );
  const scenarios = (scenarioList ?? (customComparison ? [] : [...SCENARIOS])) as ScenarioName[];
  // --scenarios alone runs only the scenarios; with --systems or --loads, the comparison too.
  const onlyScenarios =
    values.systems === "none" ||
    (values.scenarios !== undefined && values.systems === undefined && values.loads === undefined && !values.smoke);
  const systems = onlyScenarios ? [] : (list(values.systems) ?? [...SYSTEMS]);
  const unknown = systems.filter((s) => !isSystem(s));
  if (unknown.length > 0) throw new Error(`unknown system ${unknown.join(", ")} (${SYSTEMS.join(", ")})`);
  const loads = list(values.loads)?.map((l) => positive("loads", l, 0));
  const defaults: Omit<BenchOptions, "log"> = values.smoke
    ? SMOKE_OPTIONS
    : {
        systems: [...SYSTEMS],
        loads: [500, 1000, 1500],
        rate: 20,
        repeats: 3,
        warmupSeconds: 3,
        seconds: 15, // issue 12 asks for no stall above 20 ms "in a 15 s window"
        idleSockets: 5000,
        knee: true,
        kneeSeconds: 6,
        kneeProbes: 4,
        kneeMaxStreams: 4000,
        clientProcesses: 2,
        mode: "full",
      };
  const custom = customComparison || values.scenarios !== undefined;
  const options: BenchOptions = {
    ...defaults,
    systems: systems as SystemName[],
    loads: loads ?? defaults.loads,
    rate: positive("rate", values.rate, defaults.rate),
    repeats: positive("repeats", values.repeats, defaults.repeats),
    seconds: positive("seconds", values.seconds, defaults.seconds),
    warmupSeconds: positive("warmup", values.warmup, defaults.warmupSeconds),
    idleSockets: positive("idle", values.idle, defaults.idleSockets, true),
    knee: defaults.knee && !values["no-knee"],
    kneeSeconds: positive("knee-seconds", values["knee-seconds"], defaults.kneeSeconds),
    kneeProbes: positive("knee-probes", values["knee-probes"], defaults.kneeProbes, true),
    kneeMaxStreams: positive("knee-max", values["knee-max"], defaults.kneeMaxStreams),
    clientProcesses: Math.min(2, positive("clients", values.clients, defaults.clientProcesses)),
    mode: values.smoke ? "smoke" : custom ? "custom" : defaults.mode,
    log,
  };

  if (values.profile) {
    const dir = join(out, `profile-${stamp(new Date().toISOString())}`);
    mkdirSync(dir, { recursive: true });
    const results = await runBench({
      ...options,
      systems: ["chatgrid"],
      loads: [loads?.[0] ?? 500],
      repeats: 1,
      knee: false,
      idleSockets: 0,
      mode: "profile",
      relayNodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`],
    });
    const profiles = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")) : [];
    if (profiles.length === 0) throw new Error(`the gateway wrote no profile into ${dir}`);
    const point = results.points[0]!;
    const summary = summarizeProfile(join(dir, profiles[0]!), point.window);
    const markdown = `chatgrid gateway under --cpu-prof at ${point.streams} streams × ${point.rate}/s (${point.deliveredPerSecond} chunks/s delivered, p99 ${point.latencyMs.p99} ms, ${point.cpuUsPerChunk.relay} µs per chunk with the profiler on):\n\n${profileMarkdown(summary)}`;
    writeFileSync(join(dir, "summary.md"), markdown);
    writeFileSync(join(dir, "summary.json"), `${JSON.stringify({ point, summary }, null, 1)}\n`);
    console.log(markdown);
    console.log(`profile and summary in ${relative(REPO_ROOT, dir)}`);
    return;
  }

  const base: ScenarioOptions = values.smoke ? SCENARIO_SMOKE : SCENARIO_DEFAULTS;
  const scenarioRepeats = positive("scenario-repeats", values["scenario-repeats"], base.failover.repeats);
  const scenarioOptions: ScenarioOptions = {
    failover: {
      ...base.failover,
      repeats: scenarioRepeats,
      streams: positive("failover-streams", values["failover-streams"], base.failover.streams),
      subnets: Math.min(
        base.failover.subnets,
        positive("failover-streams", values["failover-streams"], base.failover.streams),
      ),
    },
    firstToken: {
      ...base.firstToken,
      repeats: scenarioRepeats,
      rate: positive("first-token-rate", values["first-token-rate"], base.firstToken.rate),
      warmupSeconds: positive("first-token-warmup", values["first-token-warmup"], base.firstToken.warmupSeconds),
      seconds: positive("first-token-seconds", values["first-token-seconds"], base.firstToken.seconds),
    },
    capacity: { ...base.capacity },
    redisFloor: {
      ...base.redisFloor,
      rounds: positive("scenario-repeats", values["scenario-repeats"], base.redisFloor.rounds),
    },
  };

  const plan = options.repeats * options.loads.length * options.systems.length;
  if (options.systems.length > 0)
    log(
      `bench (${options.mode}): ${options.systems.join(", ")}; loads ${options.loads.join(", ")} streams × ${options.rate}/s; ` +
        `${options.repeats} repeats of ${options.warmupSeconds} + ${options.seconds} s (${plan} points); ` +
        `knee ${options.knee ? `up to ${options.kneeProbes} probes of ${options.kneeSeconds} s` : "off"}; ` +
        `${options.idleSockets} idle sockets; ${options.clientProcesses} client processes`,
    );
  const compared = await runBench(
    options.systems.length > 0 ? options : { ...options, loads: [0], knee: false, idleSockets: 0 },
  );
  const results: RunResults =
    scenarios.length > 0 ? { ...compared, scenarios: await runScenarios(scenarios, scenarioOptions, log) } : compared;
  if (scenarios.length > 0) {
    const finished = Date.now();
    results.finishedAt = new Date(finished).toISOString();
    results.durationSeconds = Math.round((finished - Date.parse(results.startedAt)) / 1000);
  }
  const written = writeRun(results, out);
  console.log(`\n${renderMarkdown(results, relative(out, `${written.json.replace(/\.json$/, "")}-figures`))}`);
  console.log(
    `results: ${relative(REPO_ROOT, written.json)}, ${relative(REPO_ROOT, written.markdown)} (${results.durationSeconds} s)`,
  );
  // The docs' generated section is the comparison's (with the scenarios after it): a run without it leaves them be.
  if (values["write-docs"] && results.points.length === 0) console.log("--write-docs: no comparison in this run");
  else if (values["write-docs"])
    for (const file of updateDocs(results)) console.log(`wrote ${relative(REPO_ROOT, file)}`);
  if (options.mode === "smoke") {
    const problems = [...smokeProblems(results), ...scenarioSmokeProblems(results.scenarios, scenarios)];
    if (problems.length > 0) {
      console.error(`smoke FAILED:\n  ${problems.join("\n  ")}`);
      process.exitCode = 1;
    } else {
      console.log(
        "smoke passed: every chunk of every system delivered once, every scenario checked, JSON, tables and figures written",
      );
    }
  }
}

main()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
