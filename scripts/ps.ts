/** `npm run ps`: the processes of the running cluster, from its cluster.json (default state dir .chatgrid). */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterInfo } from "../infra/runner";
import { table } from "./start";

const stateDir = process.argv[2] ?? ".chatgrid";
const file = join(stateDir, "cluster.json");
if (!existsSync(file)) {
  console.error(`no cluster is running (no ${file}); start one with npm start`);
  process.exit(1);
}
const info = JSON.parse(readFileSync(file, "utf8")) as ClusterInfo;
const alive = (pid?: number) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
console.log(
  `chatgrid cluster (runner pid ${info.runnerPid}${alive(info.runnerPid) ? "" : ", not running"}) — ${info.urls.chat}`,
);
console.log(table(info.processes.map((p) => ({ ...p, state: alive(p.pid) ? p.state : "down" }))));
