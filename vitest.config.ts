import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // End-to-end files start real clusters; two at a time is what 2 cores carry without starving timers.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    projects: [
      {
        test: {
          name: "main",
          include: [
            "packages/*/src/**/*.test.ts",
            "apps/*/src/**/*.test.ts",
            "infra/**/*.test.ts",
            "test/**/*.test.ts",
          ],
          // The real-engine tests run alone, after this suite (scripts/run-tests.mjs): their image builds and
          // container start-ups next to the process e2e tests would make those flaky.
          exclude: ["**/node_modules/**", "test/docker/**"],
          globalSetup: ["test/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "docker",
          include: ["test/docker/**/*.test.ts"],
          exclude: ["**/node_modules/**"],
          // One `pulumi up` (cold: image builds), chaos and a scale on it, one destroy.
          testTimeout: 300_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
