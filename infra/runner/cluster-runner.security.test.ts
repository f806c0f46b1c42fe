import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { banner } from "../../scripts/start";
import { ChatClient } from "../../test/support/chat-client";
import { waitFor } from "../../test/support/wait";
import { binaryPath } from "./binaries";
import { ClusterRunner, REPO_ROOT, redactUrl } from "./cluster-runner";
import { redisPing } from "./health";
import { freePort } from "./ports";
import { SECRET_FILES } from "./secrets";
import { UNPRIVILEGED_USER, unprivilegedUser } from "./unprivileged";

const isRoot = process.getuid?.() === 0;
/** Who runs Redis and nginx's workers: the unprivileged user when the tests run as root (CI does), else us. */
const expectedUser = isRoot ? UNPRIVILEGED_USER : userInfo().username;
const quickNodes = {
  SHUTDOWN_GRACE_MS: "2000",
  LOG_LEVEL: "warn",
  DEMO_MAX_TOKENS: "5",
  DEMO_TOKENS_PER_SECOND: "100",
};

const tempDirs: string[] = [];
const tempDir = (prefix = "chatgrid-security-test-") => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const mode = (path: string) => statSync(path).mode & 0o777;
const userOf = (pid: number) => spawnSync("ps", ["-o", "user=", "-p", String(pid)], { encoding: "utf8" }).stdout.trim();
const childrenOf = (pid: number) =>
  spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
    .stdout.split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
const environOf = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
const allFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)],
  );

/**
 * What anyone who reaches the port can do: raw RESP commands on one connection, no client library, no AUTH unless
 * sent. Resolves with the first line of each reply.
 */
function rawCommands(url: string, commands: string[][]): Promise<string[]> {
  const encode = (args: string[]) =>
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: Number(new URL(url).port) });
    let received = "";
    socket.once("error", reject);
    socket.once("connect", () => socket.write(commands.map(encode).join("")));
    socket.on("data", (data) => {
      received += data.toString();
      const lines = received.split("\r\n").slice(0, -1);
      if (lines.length >= commands.length) {
        socket.destroy();
        resolve(lines.slice(0, commands.length));
      }
    });
  });
}

describe("a started cluster's credentials (2 gateways, 1 AI node, Redis, nginx)", () => {
  let runner: ClusterRunner;
  let stateDir: string;
  let webRoot: string;
  let redis: Redis;
  const marker = `runner-only-${Date.now()}`;

  beforeAll(async () => {
    stateDir = tempDir();
    webRoot = tempDir("chatgrid-security-web-");
    chmodSync(webRoot, 0o755);
    writeFileSync(join(webRoot, "index.html"), "<!doctype html><title>web root served by nginx</title>\n");
    // Something in the runner's environment that only its own nodes may inherit.
    process.env.CHATGRID_TEST_RUNNER_ONLY = marker;
    runner = await ClusterRunner.start({
      stateDir,
      webRoot,
      topology: { gatewayNodes: 2, aiNodes: 1, nodeEnv: quickNodes },
      publicPortsMayBeFree: true,
      restart: false,
      nginx: true,
    });
    redis = new Redis(runner.redisUrl, runner.redisOptions);
  });
  afterAll(async () => {
    delete process.env.CHATGRID_TEST_RUNNER_ONLY;
    redis?.disconnect();
    await runner?.stop();
  });

  it("generates secrets/redis-password and secrets/cluster-secret: 32 random bytes each, dir 0700, files 0600", () => {
    const dir = join(stateDir, "secrets");
    expect(mode(dir)).toBe(0o700);
    const password = readFileSync(join(dir, SECRET_FILES.redisPassword), "utf8");
    const secret = readFileSync(join(dir, SECRET_FILES.clusterSecret), "utf8");
    for (const file of Object.values(SECRET_FILES)) expect(mode(join(dir, file)), file).toBe(0o600);
    for (const value of [password, secret]) {
      expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(value, "base64url")).toHaveLength(32);
    }
    expect(password).not.toBe(secret);
    expect(runner.redisPassword).toBe(password);
    expect(runner.redisOptions).toEqual({ password });
    expect(runner.clusterSecret).toBe(secret);
  });

  it("Redis refuses every command without the password (NOAUTH) and a wrong one (WRONGPASS): nobody can act as a node", async () => {
    const replies = await rawCommands(runner.redisUrl, [
      ["SET", "chatgrid:probe", "x"],
      ["ZADD", "chatgrid:ai:nodes", "1", "rogue"],
      ["PUBLISH", "chatgrid:any", "frame"],
      ["KEYS", "*"],
      ["CONFIG", "SET", "requirepass", ""],
      ["AUTH", "not-the-password"],
      ["SET", "chatgrid:probe", "x"],
    ]);
    expect(
      replies.slice(0, 5).every((r) => r.startsWith("-NOAUTH")),
      replies.join(" | "),
    ).toBe(true);
    expect(replies[5]).toMatch(/^-WRONGPASS/);
    expect(replies[6]).toMatch(/^-NOAUTH/);
    // ioredis without the password: refused the same way.
    const stranger = new Redis(runner.redisUrl, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    stranger.on("error", () => undefined);
    await expect(stranger.connect().then(() => stranger.set("chatgrid:probe", "x"))).rejects.toThrow(/NOAUTH|closed/);
    stranger.disconnect();
    expect(await redis.exists("chatgrid:probe")).toBe(0);
    const port = Number(new URL(runner.redisUrl).port);
    expect(await redisPing("127.0.0.1", port)).toBe(false);
    expect(await redisPing("127.0.0.1", port, "not-the-password")).toBe(false);
    expect(await redisPing("127.0.0.1", port, runner.redisPassword)).toBe(true);
    expect(await redis.ping()).toBe("PONG");
  });

  it("Redis runs with its conf (0600, its user's), protected mode, loopback, AOF, 256mb and volatile-lru", async () => {
    const conf = join(stateDir, "redis", "redis.conf");
    expect(mode(conf)).toBe(0o600);
    expect(statSync(conf).uid).toBe(isRoot ? runner.runAs!.uid : process.getuid!());
    expect(readFileSync(conf, "utf8")).toContain(`requirepass "${runner.redisPassword}"`);
    const get = async (key: string) => ((await redis.config("GET", key)) as string[])[1];
    expect(await get("maxmemory")).toBe(String(256 * 1024 * 1024));
    expect(await get("maxmemory-policy")).toBe("volatile-lru");
    expect(await get("protected-mode")).toBe("yes");
    expect(await get("bind")).toBe("127.0.0.1");
    expect(await get("appendonly")).toBe("yes");
    expect(await get("save")).toBe("");
    expect(await get("dir")).toBe(join(stateDir, "redis"));
  });

  it(`Redis and nginx's workers run as ${expectedUser}${isRoot ? " (not root: the runner is root)" : ""}`, () => {
    const redisPid = runner.node("redis").pid!;
    expect(userOf(redisPid)).toBe(expectedUser);
    const master = runner.node("nginx").pid!;
    const workers = childrenOf(master);
    expect(workers.length).toBeGreaterThan(0);
    for (const worker of workers) expect(userOf(worker), `nginx worker ${worker}`).toBe(expectedUser);
    if (isRoot) {
      expect(userOf(master)).toBe("root");
      expect(readFileSync(join(stateDir, "nginx", "nginx.conf"), "utf8")).toMatch(
        new RegExp(`^user ${UNPRIVILEGED_USER} ${runner.runAs!.group};$`, "m"),
      );
      // The unprivileged Redis gets only PATH/LANG/TZ of the runner's environment.
      expect(environOf(redisPid).filter((v) => v.includes(marker))).toEqual([]);
    }
  });

  it("a chat through nginx works end to end, nginx's workers serve the web root and buffer large bodies to disk", async () => {
    const client = new ChatClient(runner.urls.chat);
    const welcome = await client.connect();
    expect(["gateway-1", "gateway-2"]).toContain(welcome.node);
    const accepted = await client.chat("hello through nginx");
    const view = await client.done(accepted.streamId);
    client.close();
    expect(view.violations).toEqual([]);
    expect(view.done?.type).toBe("done");
    expect(view.text.length).toBeGreaterThan(0);
    expect(view.start?.aiNode).toBe("ai-1");

    const page = await fetch(runner.urls.web);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("web root served by nginx");
    // A 40 KB body is over nginx's in-memory buffer: a worker writes it to client_body_temp first.
    const big = await client.request("POST", "/api/chat", { message: "x".repeat(40_000) });
    expect(big.status).toBeGreaterThanOrEqual(200);
    expect(big.status).toBeLessThan(500);
    expect(readFileSync(join(stateDir, "logs", "nginx-error.log"), "utf8")).not.toMatch(/Permission denied|\(13:/);
  });

  it("every gateway and AI node has REDIS_PASSWORD and CLUSTER_SECRET in its process environment, not in the topology", () => {
    for (const node of [...runner.topology.gateways, ...runner.topology.aiNodes]) {
      const env = environOf(runner.node(node.name).pid!);
      expect(env, node.name).toContain(`REDIS_PASSWORD=${runner.redisPassword}`);
      expect(env, node.name).toContain(`CLUSTER_SECRET=${runner.clusterSecret}`);
      expect(node.env.REDIS_PASSWORD, node.name).toBeUndefined();
      expect(node.env.CLUSTER_SECRET, node.name).toBeUndefined();
    }
  });

  it("neither secret is in cluster.json, `npm run ps`, the start banner, `ps -eo args`, nginx.conf or any log file", () => {
    const secrets = [runner.redisPassword!, runner.clusterSecret];
    const clusterJson = readFileSync(join(stateDir, "cluster.json"), "utf8");
    expect(JSON.parse(clusterJson).secretsDir).toBe(join(stateDir, "secrets"));
    const ps = spawnSync(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", "ps.ts"), stateDir], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    expect(ps.status, ps.stderr).toBe(0);
    expect(ps.stdout).toContain("gateway-1");
    const startBanner = banner(runner, stateDir, false);
    expect(startBanner).toContain(join(stateDir, "secrets", SECRET_FILES.redisPassword));
    expect(startBanner).toContain(join(stateDir, "secrets", SECRET_FILES.clusterSecret));
    const args = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
    // Redis was started with its conf file's path and nothing else.
    expect(args).toContain(`${binaryPath("redis-server")}`);
    const logs = allFiles(join(stateDir, "logs"));
    expect(logs.map((f) => f.split("/").pop()).sort()).toEqual(
      ["ai-1.log", "gateway-1.log", "gateway-2.log", "nginx-error.log", "nginx.log", "redis.log"].sort(),
    );
    // Redis logs its start: the scan below reads real content.
    expect(readFileSync(join(stateDir, "logs", "redis.log"), "utf8")).toMatch(/Ready to accept connections/);
    const texts: [string, string][] = [
      ["cluster.json", clusterJson],
      ["npm run ps", ps.stdout + ps.stderr],
      ["banner", startBanner],
      ["ps -eo args", args],
      ["nginx.conf", readFileSync(join(stateDir, "nginx", "nginx.conf"), "utf8")],
      ...logs.map((f): [string, string] => [f, readFileSync(f, "utf8")]),
    ];
    for (const [where, text] of texts) {
      for (const secret of secrets) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
    }
  });
});

describe("secrets are generated once per state dir and reused; deleting the files rotates them", () => {
  const start = (stateDir: string) =>
    ClusterRunner.start({
      stateDir,
      topology: { gatewayNodes: 1, aiNodes: 1, nodeEnv: quickNodes },
      publicPortsMayBeFree: true,
      restart: false,
      nginx: false,
    });

  it("a restart keeps both secrets and the data; new files after deletion, the old password refused, data intact", async () => {
    const stateDir = tempDir();
    let runner = await start(stateDir);
    const first = { password: runner.redisPassword!, secret: runner.clusterSecret };
    let redis = new Redis(runner.redisUrl, runner.redisOptions);
    await redis.set("chatgrid:test:persisted", "kept");
    redis.disconnect();
    await runner.stop();

    runner = await start(stateDir);
    try {
      expect({ password: runner.redisPassword, secret: runner.clusterSecret }).toEqual(first);
      redis = new Redis(runner.redisUrl, runner.redisOptions);
      expect(await redis.get("chatgrid:test:persisted")).toBe("kept");
      redis.disconnect();
    } finally {
      await runner.stop();
    }

    for (const file of Object.values(SECRET_FILES)) rmSync(join(stateDir, "secrets", file));
    runner = await start(stateDir);
    try {
      expect(runner.redisPassword).not.toBe(first.password);
      expect(runner.clusterSecret).not.toBe(first.secret);
      for (const file of Object.values(SECRET_FILES)) expect(mode(join(stateDir, "secrets", file))).toBe(0o600);
      expect(await rawCommands(runner.redisUrl, [["AUTH", first.password]])).toEqual([
        expect.stringMatching(/^-WRONGPASS/),
      ]);
      redis = new Redis(runner.redisUrl, runner.redisOptions);
      expect(await redis.get("chatgrid:test:persisted")).toBe("kept");
      redis.disconnect();
    } finally {
      await runner.stop();
    }
  });
});

describe("a tiny redisMaxMemory: expiring keys are evicted, writes never fail", () => {
  let runner: ClusterRunner;
  let redis: Redis;
  beforeAll(async () => {
    runner = await ClusterRunner.start({
      stateDir: tempDir(),
      redisMaxMemory: "4mb",
      topology: { gatewayNodes: 1, aiNodes: 1, nodeEnv: quickNodes },
      publicPortsMayBeFree: true,
      restart: false,
      nginx: false,
    });
    redis = new Redis(runner.redisUrl, runner.redisOptions);
  });
  afterAll(async () => {
    redis?.disconnect();
    await runner?.stop();
  });

  it("CONFIG GET shows the bound; 12 MB of expiring keys into 4 MB: all written, the oldest evicted, keys without TTL kept", async () => {
    expect(await redis.config("GET", "maxmemory")).toEqual(["maxmemory", String(4 * 1024 * 1024)]);
    expect(await redis.config("GET", "maxmemory-policy")).toEqual(["maxmemory-policy", "volatile-lru"]);
    await redis.set("chatgrid:test:pinned", "no ttl");
    const total = 1500;
    const value = "v".repeat(8192);
    const errors: string[] = [];
    for (let i = 0; i < total; i += 100) {
      const batch = redis.pipeline();
      for (let k = i; k < i + 100; k++) batch.set(`chatgrid:test:expiring:${k}`, value, "PX", 600_000);
      for (const [error] of (await batch.exec()) ?? []) if (error) errors.push(error.message);
    }
    expect(errors).toEqual([]);
    const evicted = Number(/evicted_keys:(\d+)/.exec(await redis.info("stats"))![1]);
    expect(evicted).toBeGreaterThan(0);
    const alive = async (from: number, to: number) => {
      const names = Array.from({ length: to - from }, (_, i) => `chatgrid:test:expiring:${from + i}`);
      return (await redis.exists(...names)) as number;
    };
    const oldest = await alive(0, 300);
    const newest = await alive(total - 300, total);
    expect(oldest).toBeLessThan(newest);
    expect(await redis.exists(`chatgrid:test:expiring:${total - 1}`)).toBe(1);
    expect(await redis.get("chatgrid:test:pinned")).toBe("no ttl");
    // More than fits: 4 MB hold at most ~500 of these.
    expect(await alive(0, total)).toBeLessThan(total / 2);
  });
});

describe("an external Redis (--redis-url): the password comes from REDIS_PASSWORD", () => {
  let external: ChildProcess | undefined;
  let runner: ClusterRunner | undefined;
  let saved: string | undefined;
  afterAll(async () => {
    await runner?.stop();
    if (saved === undefined) delete process.env.REDIS_PASSWORD;
    else process.env.REDIS_PASSWORD = saved;
    if (external && external.exitCode === null) {
      const exited = new Promise((resolve) => external!.once("exit", resolve));
      external.kill("SIGKILL");
      await exited;
    }
  });

  it("nodes get that password, no redis-password file is written, the cluster secret still is", async () => {
    const port = await freePort();
    const password = `external pass "with" spaces ${Date.now()}`;
    external = spawn(binaryPath("redis-server"), ["-"], { stdio: ["pipe", "ignore", "ignore"] });
    external.stdin!.end(
      `port ${port}\nbind 127.0.0.1\nrequirepass "${password.replace(/"/g, '\\"')}"\nsave ""\nappendonly no\n`,
    );
    await waitFor("the external Redis", () => redisPing("127.0.0.1", port, password));
    saved = process.env.REDIS_PASSWORD;
    process.env.REDIS_PASSWORD = password;
    const stateDir = tempDir();
    runner = await ClusterRunner.start({
      stateDir,
      redisUrl: `redis://127.0.0.1:${port}`,
      topology: { gatewayNodes: 1, aiNodes: 1, nodeEnv: quickNodes },
      publicPortsMayBeFree: true,
      restart: false,
      nginx: false,
    });
    expect(runner.redisPassword).toBe(password);
    expect([...runner.processes.keys()]).toEqual(["ai-1", "gateway-1"]);
    expect(existsSync(join(stateDir, "secrets", SECRET_FILES.redisPassword))).toBe(false);
    expect(readFileSync(join(stateDir, "secrets", SECRET_FILES.clusterSecret), "utf8")).toBe(runner.clusterSecret);
    for (const name of ["ai-1", "gateway-1"]) {
      expect(environOf(runner.node(name).pid!)).toContain(`REDIS_PASSWORD=${password}`);
    }
    // The nodes really use it: the gateway's health needs Redis.
    const health = await fetch(`http://127.0.0.1:${runner.topology.gateways[0]!.metricsPort}/health`);
    expect(health.status).toBe(200);
    expect(readFileSync(join(stateDir, "cluster.json"), "utf8")).not.toContain(password);
  });

  it("a password inside a Redis URL is never shown: cluster.json and the banner get the URL redacted", () => {
    expect(redactUrl("redis://:s3cret@redis.internal:6379")).toBe("redis://:***@redis.internal:6379");
    expect(redactUrl("rediss://user:s3cret@redis.internal:6380/0")).toBe("rediss://:***@redis.internal:6380/0");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
  });
});

describe("refusals before anything starts", () => {
  it("an invalid redisMaxMemory is refused with the option and what it expects", async () => {
    const stateDir = tempDir();
    await expect(
      ClusterRunner.start({ stateDir, redisMaxMemory: "lots", topology: { gatewayNodes: 1, aiNodes: 1 } }),
    ).rejects.toThrow(
      'redisMaxMemory: expected a size such as 256mb, 1gb or 64mb (a positive number with b/kb/mb/gb), got "lots"',
    );
    expect(readdirSync(stateDir)).toEqual([]);
  });

  it(
    isRoot
      ? `as root: a state dir ${UNPRIVILEGED_USER} cannot reach is refused naming the directory; a web root it cannot read is served from a copy`
      : "not root: the runner keeps its own user (nothing to drop to)",
    async () => {
      if (!isRoot) {
        expect(unprivilegedUser()).toBeUndefined();
        return;
      }
      const hidden = tempDir(); // mkdtemp: 0700 root
      const stateDir = join(hidden, "state");
      mkdirSync(stateDir);
      await expect(
        ClusterRunner.start({ stateDir, topology: { gatewayNodes: 1, aiNodes: 1 }, publicPortsMayBeFree: true }),
      ).rejects.toThrow(`${hidden} is not traversable by ${UNPRIVILEGED_USER}`);
      // A checkout under /root: nginx's workers could not read the built client, so it is served from a copy.
      const webRoot = tempDir(); // 0700 root
      writeFileSync(join(webRoot, "index.html"), "<title>copied web root</title>\n");
      const copyState = tempDir();
      const runner = await ClusterRunner.start({
        stateDir: copyState,
        webRoot,
        topology: { gatewayNodes: 1, aiNodes: 1 },
        publicPortsMayBeFree: true,
      });
      try {
        expect(runner.options.webRoot).toBe(join(copyState, "web"));
        expect(await (await fetch(runner.urls.web)).text()).toContain("copied web root");
      } finally {
        await runner.stop();
      }
    },
  );
});
