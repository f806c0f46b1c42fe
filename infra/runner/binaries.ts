import { spawnSync } from "node:child_process";

/** The Debian package that provides each binary the runner needs. */
const PACKAGES: Record<string, string> = {
  "redis-server": "redis-server",
  nginx: "nginx",
  java: "default-jre-headless",
  mvn: "maven",
  chromium: "chromium",
  openssl: "openssl",
};

export function hasBinary(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name} || test -x /usr/sbin/${name}`], { stdio: "ignore" }).status === 0;
}

/** nginx lives in /usr/sbin, which is not on every user's PATH. */
export function binaryPath(name: string): string {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
  if (found) return found;
  return `/usr/sbin/${name}`;
}

/**
 * Makes sure the binaries exist. On Debian as root it installs what is missing with apt; otherwise it throws
 * with the exact command to run.
 */
export function ensureBinaries(names: string[], log: (line: string) => void = console.log): void {
  const missing = names.filter((name) => !hasBinary(name));
  if (missing.length === 0) return;
  const packages = missing.map((name) => PACKAGES[name] ?? name);
  const canInstall = process.getuid?.() === 0 && hasBinary("apt-get") && process.env.CHATGRID_NO_INSTALL !== "1";
  if (canInstall) {
    log(`installing missing packages: ${packages.join(" ")} (apt-get)`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    const install = spawnSync("apt-get", ["install", "-y", "-qq", ...packages], { stdio: "inherit", env });
    if (update.status === 0 && install.status === 0 && missing.every(hasBinary)) return;
  }
  throw new Error(
    `missing: ${missing.join(", ")}. Install with:\n  sudo apt-get update && sudo apt-get install -y ${packages.join(" ")}`,
  );
}
