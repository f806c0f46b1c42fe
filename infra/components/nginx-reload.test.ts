import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NGINX_TEMP_DIRS } from "../nginx/render";
import { binaryPath, ensureBinaries } from "../runner/binaries";
import { freePort } from "../runner/ports";
import { reloadingNginx } from "./nginx";

/** A minimal nginx.conf answering `body` on `port`, with every file nginx writes under `dir`. */
function conf(dir: string, port: number, body: string): string {
  return [
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log;`,
    "events {}",
    "http {",
    "  access_log off;",
    ...NGINX_TEMP_DIRS.map((temp) => `  ${temp}_path ${dir}/${temp};`),
    `  server { listen 127.0.0.1:${port}; location / { return 200 "${body}"; } }`,
    "}",
    "",
  ].join("\n");
}

async function answer(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/`)).text();
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The entrypoint the nginx containers run (infra/components/nginx.ts), here with the machine's own nginx: it must
// follow its file in place, keep serving through a broken file, and stop on SIGTERM.
describe("reloadingNginx: nginx that follows its configuration file", () => {
  ensureBinaries(["nginx"]);
  let dir: string;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child?.exitCode === null) child.kill("SIGKILL");
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a new file is served after a reload, a broken one is not loaded (the old keeps serving), SIGTERM ends it", async () => {
    dir = await mkdtemp(join(tmpdir(), "chatgrid-nginx-reload-"));
    const port = await freePort();
    const file = join(dir, "entry.conf");
    // Written as HostFile writes: a whole new file renamed over the old one.
    const replace = async (text: string) => {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    };
    await replace(conf(dir, port, "one"));
    const [command, ...args] = reloadingNginx(file);
    child = spawn(command!, args, {
      env: { ...process.env, PATH: `${dirname(binaryPath("nginx"))}:${process.env.PATH ?? ""}` },
      stdio: ["ignore", "inherit", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    await until("nginx to answer", async () => (await answer(port)) === "one");

    await replace(conf(dir, port, "two"));
    await until("the new file to be served", async () => (await answer(port)) === "two");

    // A file nginx -t refuses is not loaded; nginx keeps the last good one, and takes the next good one.
    await replace(`${conf(dir, port, "three")}this is not nginx;\n`);
    // The loop's `nginx -t` says why (on the container's log); only after that is "not loaded" a fact.
    await until("nginx -t to refuse the file", async () => stderr.includes('unknown directive "this"'));
    expect(stderr).toContain("test failed");
    expect(await answer(port)).toBe("two");
    await replace(conf(dir, port, "four"));
    await until("the next good file to be served", async () => (await answer(port)) === "four");

    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    expect(code).toBe(0);
    await expect(answer(port)).rejects.toThrow();
  });
});
