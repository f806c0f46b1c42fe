import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { binaryPath } from "../runner/binaries";
import { deriveTopology, parseTopologyConfig, type Topology, type TopologyConfigInput } from "../topology";
import { type NginxRenderOptions, renderNginxConf } from "./render";

const isRoot = process.getuid?.() === 0;

const topologyOf = (input: TopologyConfigInput): Topology => {
  const config = parseTopologyConfig(input);
  return deriveTopology(config, {
    bindHost: "127.0.0.1",
    // nginx resolves upstream hosts when it loads the file: loopback keeps `nginx -t` independent of DNS.
    hostOf: () => "127.0.0.1",
    gatewayPort: (i) => 21_000 + i,
    gatewayMetricsPort: (i) => 22_000 + i,
    aiPort: (i) => 23_000 + i,
    redisUrl: "redis://127.0.0.1:6379",
    allowedOrigins: [`http://127.0.0.1:${config.webPort}`],
  });
};

/**
 * The `{ ... }` bodies of every block opened by `header` (e.g. `server`, `location /api/`), brace-matched and aware of
 * quoted strings (the JSON error bodies contain braces).
 */
function blocks(text: string, header: string): string[] {
  const found: string[] = [];
  const escaped = header.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const opener = new RegExp(`(^|[\\s;{}])${escaped}\\s*\\{`, "g");
  for (let match = opener.exec(text); match; match = opener.exec(text)) {
    const start = match.index + match[0].length;
    let depth = 1;
    let quote: string | undefined;
    let i = start;
    for (; i < text.length && depth > 0; i++) {
      const c = text[i]!;
      if (quote) {
        if (c === "\\") i++;
        else if (c === quote) quote = undefined;
      } else if (c === "'" || c === '"') quote = c;
      else if (c === "#") i = text.indexOf("\n", i) === -1 ? text.length : text.indexOf("\n", i);
      else if (c === "{") depth++;
      else if (c === "}") depth--;
    }
    expect(depth, `unbalanced block ${header}`).toBe(0);
    found.push(text.slice(start, i - 1));
  }
  return found;
}

/** Lines of a block without comments, trimmed. */
const directives = (block: string): string[] =>
  block
    .split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line && !line.startsWith("#"));

function nginxBinary(): string {
  const path = binaryPath("nginx");
  if (!existsSync(path)) {
    throw new Error(`nginx is not installed (looked for ${path}); install it with: apt-get install -y nginx`);
  }
  return path;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes the rendering into `dir` and runs the real `nginx -t` on it with `dir` as prefix. */
function nginxTest(conf: string, dir: string): { status: number | null; output: string } {
  const file = join(dir, "nginx.conf");
  writeFileSync(file, conf);
  const run = spawnSync(nginxBinary(), ["-t", "-c", file, "-p", dir, "-e", join(dir, "error.log")], {
    encoding: "utf8",
  });
  return { status: run.status, output: `${run.stderr ?? ""}${run.stdout ?? ""}${run.error ? String(run.error) : ""}` };
}

const freshDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-nginx-test-"));
  tempDirs.push(dir);
  mkdirSync(join(dir, "logs"), { recursive: true });
  return dir;
};

interface Variant {
  name: string;
  options: (dir: string) => NginxRenderOptions;
}

const variants: Variant[] = [
  {
    name: "bare (no webRoot, listenHost, runtimeDir, user)",
    options: (dir) => ({ errorLog: join(dir, "error.log"), accessLog: "off" }),
  },
  {
    name: "process target (runtimeDir, listenHost 127.0.0.1, user when root)",
    options: (dir) => ({
      errorLog: join(dir, "logs", "nginx-error.log"),
      accessLog: "off",
      runtimeDir: dir,
      listenHost: "127.0.0.1",
      user: isRoot ? "root" : undefined,
    }),
  },
  {
    name: "web client (webRoot, listenHost 0.0.0.0, access log, workers auto)",
    options: (dir) => {
      const webRoot = join(dir, "web");
      mkdirSync(webRoot, { recursive: true });
      writeFileSync(join(webRoot, "index.html"), "<!doctype html><title>chatgrid</title>");
      return {
        errorLog: join(dir, "error.log"),
        accessLog: join(dir, "logs", "access.log"),
        webRoot,
        listenHost: "0.0.0.0",
        workerProcesses: "auto",
      };
    },
  },
  {
    name: "everything (webRoot, runtimeDir, listenHost, user when root)",
    options: (dir) => {
      const webRoot = join(dir, "web");
      mkdirSync(webRoot, { recursive: true });
      return {
        errorLog: join(dir, "error.log"),
        accessLog: "off",
        webRoot,
        runtimeDir: dir,
        listenHost: "127.0.0.1",
        user: isRoot ? "root" : undefined,
        workerProcesses: 2,
      };
    },
  },
];

const sizes = [
  { gatewayNodes: 1, aiNodes: 1 },
  { gatewayNodes: 3, aiNodes: 3 },
  { gatewayNodes: 5, aiNodes: 2 },
];

const cases = sizes.flatMap((size) => variants.map((variant) => ({ ...size, variant, label: variant.name })));

const ports = { httpPort: 18_080, webPort: 13_000, metricsPort: 18_090, apiRatePerSecond: 7, apiBurst: 11 };

describe("renderNginxConf", () => {
  it.each(cases)(
    "$gatewayNodes gateways + $aiNodes AI nodes, $label: routing and limits",
    ({ gatewayNodes, aiNodes, variant }) => {
      const dir = freshDir();
      const options = variant.options(dir);
      const topology = topologyOf({ gatewayNodes, aiNodes, ...ports });
      const conf = renderNginxConf(topology, options);
      const at = (port: number) => (options.listenHost ? `${options.listenHost}:${port}` : String(port));

      // The upstream: ip_hash and exactly one server line per gateway, nothing else.
      const upstreams = blocks(conf, "upstream chatgrid_gateways");
      expect(upstreams).toHaveLength(1);
      const upstream = directives(upstreams[0]!);
      expect(upstream).toContain("ip_hash;");
      const serverLines = upstream.filter((line) => /^server\s/.test(line));
      expect(serverLines).toEqual(
        topology.gateways.map((g) => `server ${g.host}:${g.port} max_fails=2 fail_timeout=5s;`),
      );
      expect(serverLines).toHaveLength(gatewayNodes);
      for (const g of topology.gateways) expect(upstreams[0]).toContain(g.name);

      // Three servers: the public entry, the web client, stub_status.
      const servers = blocks(conf, "server");
      expect(servers).toHaveLength(3);
      const listening = (port: number) => servers.filter((s) => directives(s).includes(`listen ${at(port)};`));
      const [entry] = listening(ports.httpPort);
      const [web] = listening(ports.webPort);
      const [metrics] = listening(ports.metricsPort);
      expect(entry, `no server listens on ${at(ports.httpPort)}`).toBeDefined();
      expect(web, `no server listens on ${at(ports.webPort)}`).toBeDefined();
      expect(metrics, `no server listens on ${at(ports.metricsPort)}`).toBeDefined();

      // The entry: body limit, health, rate-limited API, WebSocket upgrade with long timeouts, JSON errors.
      expect(directives(entry!)).toContain("client_max_body_size 64k;");
      expect(conf).toContain(
        `limit_req_zone $binary_remote_addr zone=chatgrid_api:10m rate=${ports.apiRatePerSecond}r/s;`,
      );
      expect(blocks(entry!, "location = /healthz")).toHaveLength(1);
      expect(directives(blocks(entry!, "location = /healthz")[0]!)).toContain('return 200 "ok\\n";');

      const api = blocks(entry!, "location /api/");
      expect(api).toHaveLength(1);
      const apiLines = directives(api[0]!);
      expect(apiLines.some((l) => l.startsWith(`limit_req zone=chatgrid_api burst=${ports.apiBurst}`))).toBe(true);
      expect(apiLines).toContain("proxy_pass http://chatgrid_gateways;");

      const ws = blocks(entry!, "location /ws/");
      expect(ws).toHaveLength(1);
      const wsLines = directives(ws[0]!);
      expect(wsLines).toContain("proxy_pass http://chatgrid_gateways;");
      expect(wsLines).toContain("proxy_http_version 1.1;");
      expect(wsLines).toContain("proxy_set_header Upgrade $http_upgrade;");
      expect(wsLines).toContain("proxy_set_header Connection $connection_upgrade;");
      expect(wsLines).toContain("proxy_read_timeout 1h;");
      expect(wsLines.some((l) => l.startsWith("limit_req "))).toBe(false);
      expect(blocks(conf, "map $http_upgrade $connection_upgrade")).toHaveLength(1);

      const entryLines = directives(entry!);
      expect(entryLines).toContain("error_page 413 = @too_large;");
      expect(entryLines).toContain("error_page 429 = @rate_limited;");
      expect(entryLines).toContain("error_page 502 503 504 = @unavailable;");
      for (const [location, status, code] of [
        ["@too_large", 413, "payload_too_large"],
        ["@rate_limited", 429, "rate_limited"],
        ["@unavailable", 503, "unavailable"],
      ] as const) {
        const body = blocks(entry!, `location ${location}`);
        expect(body, location).toHaveLength(1);
        const lines = directives(body[0]!);
        expect(lines).toContain("default_type application/json;");
        const ret = lines.find((l) => l.startsWith(`return ${status} '`));
        expect(ret, `${location} returns ${status}`).toBeDefined();
        const json = JSON.parse(ret!.slice(`return ${status} '`.length, -"';".length));
        expect(json.error.code).toBe(code);
        expect(typeof json.error.message).toBe("string");
      }

      // stub_status on the metrics port.
      expect(directives(metrics!)).toContain("stub_status;");
      expect(directives(entry!)).not.toContain("stub_status;");

      // The web client: served from webRoot when given, a 503 hint otherwise.
      const webLines = directives(web!);
      if (options.webRoot) {
        expect(webLines).toContain(`root ${options.webRoot};`);
        expect(directives(blocks(web!, "location /")[0]!)).toContain("try_files $uri /index.html;");
      } else {
        expect(webLines.some((l) => l.startsWith("root "))).toBe(false);
        expect(directives(blocks(web!, "location /")[0]!).some((l) => l.startsWith("return 503 "))).toBe(true);
      }

      // nginx's housekeeping.
      const top = directives(conf.slice(0, conf.indexOf("events")));
      expect(top).toContain(`error_log ${options.errorLog} warn;`);
      expect(top).toContain(`worker_processes ${options.workerProcesses ?? 1};`);
      if (options.user) expect(top).toContain(`user ${options.user};`);
      else expect(top.some((l) => l.startsWith("user "))).toBe(false);
      if (options.runtimeDir) {
        expect(top).toContain(`pid ${options.runtimeDir}/nginx.pid;`);
        expect(conf).toContain(`client_body_temp_path ${options.runtimeDir}/client_body_temp;`);
        expect(conf).toContain(`proxy_temp_path ${options.runtimeDir}/proxy_temp;`);
      } else {
        expect(top.some((l) => l.startsWith("pid "))).toBe(false);
        expect(conf).not.toContain("_temp_path");
      }
      expect(directives(blocks(conf, "http")[0]!)).toContain(`access_log ${options.accessLog};`);
    },
  );

  it.each(cases)(
    "$gatewayNodes gateways + $aiNodes AI nodes, $label: the real `nginx -t` accepts it",
    ({ gatewayNodes, aiNodes, variant }) => {
      const dir = freshDir();
      const conf = renderNginxConf(topologyOf({ gatewayNodes, aiNodes, ...ports }), variant.options(dir));
      const result = nginxTest(conf, dir);
      expect(result.status, `nginx -t failed:\n${result.output}\n--- configuration ---\n${conf}`).toBe(0);
      expect(result.output).toContain("test is successful");
    },
  );

  it("the largest topology the schema allows (64 + 64) renders 64 upstream servers nginx accepts", () => {
    const dir = freshDir();
    const topology = topologyOf({ gatewayNodes: 64, aiNodes: 64 });
    const conf = renderNginxConf(topology, { errorLog: join(dir, "error.log"), accessLog: "off", runtimeDir: dir });
    expect(conf.match(/^\s+server 127\.0\.0\.1:\d+ max_fails=2 fail_timeout=5s;/gm)).toHaveLength(64);
    const result = nginxTest(conf, dir);
    expect(result.status, `nginx -t failed:\n${result.output}`).toBe(0);
  });

  it("the smallest rate limit values the schema accepts (apiRatePerSecond 1, apiBurst 0) render a file nginx accepts", () => {
    // parseTopologyConfig accepts apiBurst 0 (min(0)), so the renderer must produce something nginx loads with it.
    const config = parseTopologyConfig({ gatewayNodes: 1, aiNodes: 1, apiRatePerSecond: 1, apiBurst: 0 });
    expect(config.apiBurst).toBe(0);
    const dir = freshDir();
    const conf = renderNginxConf(topologyOf({ gatewayNodes: 1, aiNodes: 1, apiRatePerSecond: 1, apiBurst: 0 }), {
      errorLog: join(dir, "error.log"),
      accessLog: "off",
      runtimeDir: dir,
    });
    expect(conf).toContain("rate=1r/s;");
    const result = nginxTest(conf, dir);
    expect(result.status, `nginx -t failed:\n${result.output}`).toBe(0);
  });

  it("`nginx -t` on this machine rejects a broken file (the validation above can fail)", () => {
    const dir = freshDir();
    const conf = renderNginxConf(topologyOf({ gatewayNodes: 1, aiNodes: 1 }), {
      errorLog: join(dir, "error.log"),
      accessLog: "off",
      runtimeDir: dir,
    });
    const result = nginxTest(conf.replace("ip_hash;", "ip_hash_typo;"), dir);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain("ip_hash_typo");
  });
});
