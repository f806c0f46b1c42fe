#!/usr/bin/env node
// Runs the whole vitest suite and ends with the plain line CI reads: "N passed, N failed".
// Extra arguments go to vitest (e.g. `npm test -- test/e2e/round-trip.test.ts`).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

const results = ".vitest-results.json";
rmSync(results, { force: true });
const run = spawnSync(
  process.execPath,
  [
    "node_modules/vitest/vitest.mjs",
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${results}`,
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
let passed = 0;
let failed = 0;
if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, "utf8"));
  passed = report.numPassedTests ?? 0;
  // Failed tests, plus files that failed to load (they would otherwise count as nothing).
  failed =
    (report.numFailedTests ?? 0) +
    (report.testResults ?? []).filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
} else {
  failed = 1;
}
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status ?? 1);
