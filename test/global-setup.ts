import { ensureBinaries } from "../infra/runner";

/**
 * Before any test: the servers most tests start (Redis, nginx). As root on Debian they are installed with apt, the
 * same step npm start takes; elsewhere this fails at once with the apt-get line to run. Chromium (browser tests)
 * and Java/Maven (Kafka) are ensured where they are needed.
 */
export default function setup(): void {
  ensureBinaries(["redis-server", "nginx"], (line) => console.log(`test setup: ${line}`));
}
