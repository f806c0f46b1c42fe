#!/usr/bin/env node
// Runs the whole vitest suite and ends with the plain line CI reads: "N passed, N failed".
// Two vitest runs, one after the other (the projects of vitest.config.ts): the main suite, then the real-engine tests
// of test/docker alone, whose image builds and containers would make the timing-sensitive process e2e tests flaky.
// Extra arguments go to both runs (e.g. `npm test -- test/e2e/round-trip.test.ts`); a run none of them matches is
// empty, not failed, but at least one test must have run.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

const args = process.argv.slice(2);
let passed = 0;
let failed = 0;
let ran = 0;
let status = 0;
for (const project of ["main", "docker"]) {
  const results = `.vitest-results-${project}.json`;
  rmSync(results, { force: true });
  const run = spawnSync(
    process.execPath,
    [
      "node_modules/vitest/vitest.mjs",
      "run",
      `--project=${project}`,
      // One Docker engine: the stack's test and the ECS images' test run one file at a time.
      ...(project === "docker" ? ["--no-file-parallelism"] : []),
      ...(args.length > 0 ? ["--passWithNoTests"] : []),
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${results}`,
      ...args,
    ],
    { stdio: "inherit" },
  );
  let runFailed = 0;
  if (existsSync(results)) {
    const report = JSON.parse(readFileSync(results, "utf8"));
    passed += report.numPassedTests ?? 0;
    ran += report.numTotalTests ?? 0;
    // Failed tests, plus files that failed to load (they would otherwise count as nothing).
    runFailed =
      (report.numFailedTests ?? 0) +
      (report.testResults ?? []).filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
  } else if (run.status !== 0) {
    runFailed = 1;
  }
  if (run.status !== 0 && runFailed === 0) runFailed = 1;
  failed += runFailed;
  if (run.status !== 0) status = run.status ?? 1;
}
if (ran === 0 && failed === 0) {
  console.error(`no test matched ${args.join(" ") || "(the whole suite)"}`);
  failed = 1;
  status = 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(status);
