import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { binaryPath } from "../runner/binaries";
import { freePort, freePorts } from "../runner/ports";
import { deriveTopology, parseTopologyConfig, type Topology, type TopologyConfigInput } from "../topology";
import {
  CONTENT_SECURITY_POLICY,
  connectionBudget,
  LARGE_HEADER_BUFFER,
  maxClientConnectionsWithin,
  NGINX_ERRORS,
  type NginxRenderOptions,
  RESOLVER_DEFAULTS,
  renderNginxConf,
  SECURITY_HEADERS,
  WS_PROXY_BUFFER,
} from "./render";

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
      expect(wsLines).toContain(`proxy_buffer_size ${WS_PROXY_BUFFER.size};`);
      expect(wsLines.some((l) => l.startsWith("limit_req "))).toBe(false);
      expect(blocks(conf, "map $http_upgrade $connection_upgrade")).toHaveLength(1);

      // Connection limits: per address on the WebSocket (429), all addresses together everywhere.
      const topConf = directives(conf.slice(0, conf.indexOf("http {")));
      const budget = connectionBudget(topology.config.maxClientConnections);
      expect(topConf).toContain(`worker_connections ${budget.workerConnections};`);
      expect(topConf).toContain(`worker_rlimit_nofile ${budget.rlimitNofile};`);
      expect(conf).toContain("limit_conn_zone $binary_remote_addr zone=chatgrid_ws_address:10m;");
      expect(wsLines).toContain(`limit_conn chatgrid_ws_address ${topology.config.wsConnectionsPerAddress};`);
      expect(wsLines).toContain(`limit_conn chatgrid_total ${topology.config.maxClientConnections};`);
      expect(wsLines).toContain("limit_conn_status 429;");
      expect(wsLines).toContain("error_page 429 = @tooManyConnections;");
      expect(directives(entry!)).toContain(`limit_conn chatgrid_total ${topology.config.maxClientConnections};`);

      // Client timeouts and the header buffers.
      const httpLines = directives(blocks(conf, "http")[0]!);
      for (const directive of ["client_header_timeout", "client_body_timeout", "send_timeout"]) {
        expect(httpLines).toContain(`${directive} ${topology.config.clientTimeoutSeconds}s;`);
      }
      expect(httpLines).toContain("server_tokens off;");
      expect(httpLines).toContain(
        `large_client_header_buffers ${LARGE_HEADER_BUFFER.count} ${LARGE_HEADER_BUFFER.size};`,
      );

      // A JSON body for every error nginx answers itself, in the entry and again in /ws/ (own error_page list).
      const entryLines = directives(entry!);
      expect(entryLines).toContain("error_page 429 = @rateLimited;");
      expect(entryLines).toContain("error_page 494 =431 @headersTooLarge;");
      expect(entryLines).toContain("error_page 502 503 504 = @unavailable;");
      expect(entryLines).toContain("error_page 400 = /_chatgrid/error/badRequest;");
      // The same statuses in /ws/, only its 429 means connections.
      const wsPages = wsLines.filter((l) => l.startsWith("error_page "));
      expect(wsPages.length * 2).toBe(entryLines.filter((l) => l.startsWith("error_page ")).length);
      for (const page of wsPages) expect(entryLines).toContain(page.replace("@tooManyConnections", "@rateLimited"));
      for (const [name, error] of Object.entries(NGINX_ERRORS)) {
        const location = "requestLine" in error ? `location = /_chatgrid/error/${name}` : `location @${name}`;
        const body = blocks(entry!, location);
        expect(body, location).toHaveLength(1);
        const lines = directives(body[0]!);
        expect(lines).toContain("default_type application/json;");
        if ("requestLine" in error) expect(lines).toContain("internal;");
        const ret = lines.find((l) => l.startsWith(`return ${error.sent} '`));
        expect(ret, `${location} returns ${error.sent}`).toBeDefined();
        const json = JSON.parse(ret!.slice(`return ${error.sent} '`.length, -"';".length));
        expect(json.error.code).toBe(error.code);
        expect(typeof json.error.message).toBe("string");
      }

      // Security headers on the server, and again where a location has add_header of its own.
      const headerLine = ([name, value]: [string, string]) => `add_header ${name} "${value}" always;`;
      for (const header of Object.entries(SECURITY_HEADERS)) {
        expect(entryLines).toContain(headerLine(header));
        expect(directives(web!)).toContain(headerLine(header));
        expect(directives(blocks(entry!, "location @rateLimited")[0]!)).toContain(headerLine(header));
        if (options.webRoot) expect(directives(blocks(web!, "location /assets/")[0]!)).toContain(headerLine(header));
      }

      // The access log format: no query string, no credentials.
      const logFormat = conf.slice(conf.indexOf("log_format chatgrid"), conf.indexOf(";", conf.indexOf("log_format")));
      for (const forbidden of [
        "$request ",
        '$request"',
        "$request_uri",
        "$args",
        "$query_string",
        "$http_authorization",
        "$http_cookie",
      ]) {
        expect(logFormat).not.toContain(forbidden);
      }
      expect(logFormat).toContain("$uri");

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
      expect(directives(blocks(conf, "http")[0]!)).toContain(
        options.accessLog === "off" ? "access_log off;" : `access_log ${options.accessLog} chatgrid;`,
      );
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

describe("upstreamAddresses: the Docker target names its gateways by fixed address, so nginx needs no DNS", () => {
  // The Docker placement (infra/stacks/local.ts: every gateway on 8081 behind its own name), with names that can never
  // resolve (RFC 6761 .invalid), as a stopped or missing gateway's name does not on Docker's network.
  const dockerTopology = (gatewayNodes: number) =>
    deriveTopology(parseTopologyConfig({ gatewayNodes, aiNodes: 1 }), {
      bindHost: "0.0.0.0",
      hostOf: (name) => `${name}.invalid`,
      gatewayPort: () => 8081,
      gatewayMetricsPort: () => 9081,
      aiPort: () => 7001,
      redisUrl: "redis://redis.invalid:6379",
      allowedOrigins: [],
    });
  const addresses = (n: number) => Array.from({ length: n }, (_, i) => `172.20.1.${i + 1}`);
  // The two containers' renderings (entry; web client with its root), housekeeping kept inside the test's dir.
  const containers = [
    {
      name: "entry",
      options: (dir: string): NginxRenderOptions => ({
        errorLog: join(dir, "error.log"),
        accessLog: "off",
        workerProcesses: "auto",
        runtimeDir: dir,
      }),
    },
    {
      name: "web",
      options: (dir: string): NginxRenderOptions => ({
        errorLog: join(dir, "error.log"),
        accessLog: "off",
        workerProcesses: "auto",
        runtimeDir: dir,
        webRoot: dir,
      }),
    },
  ];

  it.each(containers)(
    "control, $name: by name, `nginx -t` fails when a gateway's name does not resolve (what kept the entry down)",
    ({ options }) => {
      const dir = freshDir();
      const result = nginxTest(renderNginxConf(dockerTopology(3), options(dir)), dir);
      expect(result.status).not.toBe(0);
      expect(result.output).toContain('host not found in upstream "gateway-1.invalid:8081"');
    },
  );

  it.each([1, 3, 64].flatMap((n) => containers.map((c) => ({ n, ...c }))))(
    "$n gateways, $name: by address, the real `nginx -t` accepts it with no name resolvable",
    ({ n, options }) => {
      const dir = freshDir();
      const conf = renderNginxConf(dockerTopology(n), { ...options(dir), upstreamAddresses: addresses(n) });
      expect(conf).not.toContain(".invalid");
      const result = nginxTest(conf, dir);
      expect(result.status, `nginx -t failed:\n${result.output}\n--- configuration ---\n${conf}`).toBe(0);
      expect(result.output).toContain("test is successful");
    },
  );

  it("only the upstream's server lines differ from the rendering by name, in order, each naming its gateway", () => {
    const topology = dockerTopology(3);
    const options: NginxRenderOptions = { errorLog: "/dev/stderr", accessLog: "off" };
    const byName = renderNginxConf(topology, options).split("\n");
    const byAddress = renderNginxConf(topology, { ...options, upstreamAddresses: addresses(3) }).split("\n");
    expect(byAddress).toHaveLength(byName.length);
    const changed = byAddress.flatMap((line, i) => (line === byName[i] ? [] : [[byName[i], line]]));
    expect(changed).toEqual(
      [1, 2, 3].map((i) => [
        `    server gateway-${i}.invalid:8081 max_fails=2 fail_timeout=5s;  # gateway-${i}`,
        `    server 172.20.1.${i}:8081 max_fails=2 fail_timeout=5s;  # gateway-${i}`,
      ]),
    );
    // Without the option (the process target) the rendering is the one by host, byte for byte.
    expect(renderNginxConf(topology, { ...options, upstreamAddresses: undefined })).toBe(byName.join("\n"));
  });

  it("refuses another count than the gateways', and anything but IPv4 addresses", () => {
    const topology = dockerTopology(3);
    const render = (upstreamAddresses: string[]) => () =>
      renderNginxConf(topology, { errorLog: "/dev/stderr", accessLog: "off", upstreamAddresses });
    expect(render(addresses(2))).toThrow("renderNginxConf: upstreamAddresses has 2 addresses for 3 gateways");
    expect(render([])).toThrow("renderNginxConf: upstreamAddresses has 0 addresses for 3 gateways");
    for (const wrong of ["gateway-2", "256.20.1.2", "172.20.1", "::1", "172.20.1.2:8081"]) {
      expect(render(["172.20.1.1", wrong, "172.20.1.3"])).toThrow(
        `renderNginxConf: upstreamAddresses must be IPv4 addresses (no names to resolve), got "${wrong}"`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// The AWS target's options (docs/aws.md): a load balancer in front, gateways by Cloud Map names whose addresses change.

/** The AWS placement: every gateway on 8081 behind its own Cloud Map name. */
const awsTopology = (gatewayNodes: number) =>
  deriveTopology(parseTopologyConfig({ gatewayNodes, aiNodes: 1 }), {
    bindHost: "0.0.0.0",
    hostOf: (name) => `${name}.chatgrid.internal`,
    gatewayPort: () => 8081,
    gatewayMetricsPort: () => 9081,
    aiPort: () => 7001,
    redisUrl: "redis://redis.chatgrid.internal:6379",
    allowedOrigins: [],
  });

/** The four options as the AWS rendering uses them (the load balancer in the public subnets of 172.20.0.0/16). */
const AWS_OPTIONS = {
  realIp: { header: "X-Forwarded-For", trusted: ["172.20.0.0/24", "172.20.1.0/24"] },
  resolver: { address: "172.20.0.2", valid: "10s" },
  keepaliveTimeout: 3605,
  workerShutdownTimeout: "10s",
} as const satisfies Partial<NginxRenderOptions>;

/**
 * The AWS rendering as far as this machine's nginx (Debian's 1.22) can load it: ONLY the ` resolve` parameter is
 * stripped from the upstream's server lines (open-source nginx accepts it from 1.27.3 on; 1.22 fails with `invalid
 * parameter "resolve"`), and the gateways' Cloud Map names are swapped for 127.0.0.1 (without `resolve`, nginx
 * resolves upstream names when it loads the file, and these do not resolve here). Everything else is loaded as
 * rendered: resolver, resolver_timeout, the upstream's zone, realip, keepalive_timeout, worker_shutdown_timeout.
 */
const loadableBy122 = (conf: string): string =>
  conf
    .replace(/^(\s*server \S+ [^;#]*) resolve;/gm, "$1;")
    .replace(/\bgateway-\d+\.chatgrid\.internal\b/g, "127.0.0.1");

/** Lines of `after` that are not in `before`, when `after` is `before` with lines inserted (and nothing else). */
function insertedLines(before: string, after: string): string[] {
  const [from, to] = [before.split("\n"), after.split("\n")];
  const inserted: string[] = [];
  let j = 0;
  for (const line of to) {
    if (j < from.length && line === from[j]) j++;
    else inserted.push(line);
  }
  expect(j, "every line of the rendering without the option is still there, in order").toBe(from.length);
  return inserted;
}

function nginxVersion(): [number, number, number] {
  const run = spawnSync(nginxBinary(), ["-v"], { encoding: "utf8" });
  const match = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(`${run.stderr ?? ""}${run.stdout ?? ""}`);
  if (!match) throw new Error(`no version from nginx -v: ${run.stderr}${run.stdout}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Open-source nginx accepts `resolve` on upstream servers from 1.27.3 on. */
const acceptsResolve = ([major, minor, patch]: [number, number, number]) =>
  major > 1 || (major === 1 && (minor > 27 || (minor === 27 && patch >= 3)));

describe("the AWS options (realIp, resolver, keepaliveTimeout, workerShutdownTimeout)", () => {
  const base: NginxRenderOptions = { errorLog: "/dev/stderr", accessLog: "off", workerProcesses: "auto" };

  it.each(cases)(
    "absent, $gatewayNodes gateways, $label: none of their directives, nginx's default keep-alive, and absent is undefined",
    ({ gatewayNodes, aiNodes, variant }) => {
      const dir = freshDir();
      const options = variant.options(dir);
      const topology = topologyOf({ gatewayNodes, aiNodes, ...ports });
      const renderings = [
        renderNginxConf(topology, options),
        renderNginxConf(awsTopology(gatewayNodes), options),
        renderNginxConf(awsTopology(gatewayNodes), {
          ...options,
          upstreamAddresses: topology.gateways.map((_, i) => `172.20.1.${i + 1}`),
        }),
      ];
      for (const conf of renderings) {
        expect(conf).not.toContain("real_ip");
        expect(conf).not.toContain("resolver");
        expect(conf).not.toMatch(/\sresolve[\s;]/);
        // limit_req_zone / limit_conn_zone and zone= are not the upstream's `zone` directive.
        expect(conf).not.toMatch(/(^|[\s;{])zone\s/m);
        expect(conf).not.toContain("worker_shutdown_timeout");
        expect(conf).not.toContain("keepalive_timeout");
        // The one keep-alive directive is the upstream's idle connections.
        expect(conf.split("\n").filter((line) => /^\s*keepalive/.test(line))).toEqual(["    keepalive 64;"]);
      }
      expect(
        renderNginxConf(topology, {
          ...options,
          realIp: undefined,
          resolver: undefined,
          keepaliveTimeout: undefined,
          workerShutdownTimeout: undefined,
        }),
      ).toBe(renderings[0]);
    },
  );

  it("each option only inserts its own lines (and resolver adds ` resolve` to the server lines): the rest is byte for byte the same", () => {
    const topology = awsTopology(3);
    const without = renderNginxConf(topology, base);
    const withOption = (options: Partial<NginxRenderOptions>) => renderNginxConf(topology, { ...base, ...options });

    expect(insertedLines(without, withOption({ workerShutdownTimeout: "10s" }))).toEqual([
      "# A graceful stop or reload closes what is still open (WebSockets) after this.",
      "worker_shutdown_timeout 10s;",
    ]);
    expect(insertedLines(without, withOption({ keepaliveTimeout: 3605 }))).toEqual([
      "  # Idle client keep-alive: longer than the load balancer's idle timeout, so the balancer closes first.",
      "  keepalive_timeout 3605s;",
    ]);
    expect(insertedLines(without, withOption({ realIp: AWS_OPTIONS.realIp }))).toEqual([
      "  # The client address is the last X-Forwarded-For entry (the one the load balancer appended; real_ip_recursive",
      "  # stays off) on connections from these: ip_hash, the limits, X-Real-IP and the access log use it.",
      "  set_real_ip_from 172.20.0.0/24;",
      "  set_real_ip_from 172.20.1.0/24;",
      "  real_ip_header X-Forwarded-For;",
      "",
    ]);
    const resolved = withOption({ resolver: AWS_OPTIONS.resolver });
    const serverLines = resolved.split("\n").filter((line) => /^\s*server gateway-/.test(line));
    expect(serverLines).toEqual(
      [1, 2, 3].map(
        (i) => `    server gateway-${i}.chatgrid.internal:8081 max_fails=2 fail_timeout=5s resolve;  # gateway-${i}`,
      ),
    );
    expect(insertedLines(without, resolved.replace(/ resolve;/g, ";"))).toEqual([
      "  # The gateways' names are resolved at run time (`resolve` in the upstream), each answer kept for valid=.",
      "  resolver 172.20.0.2 valid=10s ipv6=off;",
      `  resolver_timeout ${RESOLVER_DEFAULTS.timeout};`,
      "",
      `    zone chatgrid_gateways ${RESOLVER_DEFAULTS.zoneSize};`,
    ]);
    // All four together are the four insertions together.
    const all = renderNginxConf(topology, { ...base, ...AWS_OPTIONS });
    expect(insertedLines(without, all.replace(/ resolve;/g, ";"))).toHaveLength(2 + 2 + 6 + 5);
  });

  it.each([1, 3, 64])(
    "%i gateways, the AWS rendering: realip, resolver, zone, `resolve` on every upstream server, keep-alive and shutdown timeout",
    (n) => {
      const topology = awsTopology(n);
      const conf = renderNginxConf(topology, { ...base, ...AWS_OPTIONS });
      const top = directives(conf.slice(0, conf.indexOf("events {")));
      expect(top).toContain("worker_shutdown_timeout 10s;");
      const http = directives(blocks(conf, "http")[0]!);
      expect(http).toContain("keepalive_timeout 3605s;");
      expect(http.filter((l) => l.startsWith("set_real_ip_from "))).toEqual([
        "set_real_ip_from 172.20.0.0/24;",
        "set_real_ip_from 172.20.1.0/24;",
      ]);
      expect(http).toContain("real_ip_header X-Forwarded-For;");
      expect(directives(conf).some((l) => l.startsWith("real_ip_recursive"))).toBe(false);
      expect(http).toContain("resolver 172.20.0.2 valid=10s ipv6=off;");
      expect(http).toContain("resolver_timeout 5s;");
      // The upstream: ip_hash, its zone, one server per gateway, each by name with `resolve`, and the keep-alive pool.
      const upstream = directives(blocks(conf, "upstream chatgrid_gateways")[0]!);
      expect(upstream).toEqual([
        "ip_hash;",
        "zone chatgrid_gateways 1m;",
        ...topology.gateways.map((g) => `server ${g.name}.chatgrid.internal:8081 max_fails=2 fail_timeout=5s resolve;`),
        "keepalive 64;",
      ]);
      const servers = upstream.filter((line) => line.startsWith("server "));
      expect(servers).toHaveLength(n);
      for (const line of servers) expect(line).toMatch(/ resolve;$/);
      // The gateways get the client's address as realip rewrote it ($remote_addr), on the API and the WebSocket.
      const entry = blocks(conf, "server")[0]!;
      for (const location of ["location /api/", "location = /api/cancel", "location /ws/"]) {
        expect(directives(blocks(entry, location)[0]!)).toContain("proxy_set_header X-Real-IP $remote_addr;");
      }
    },
  );

  it("resolver's zoneSize, timeout and a port on the address are rendered as given", () => {
    const conf = renderNginxConf(awsTopology(2), {
      ...base,
      resolver: { address: "172.20.0.2:53", valid: "30s", zoneSize: "256k", timeout: "2s" },
    });
    const http = directives(blocks(conf, "http")[0]!);
    expect(http).toContain("resolver 172.20.0.2:53 valid=30s ipv6=off;");
    expect(http).toContain("resolver_timeout 2s;");
    expect(directives(blocks(conf, "upstream chatgrid_gateways")[0]!)).toContain("zone chatgrid_gateways 256k;");
  });

  it("refuses values nginx would reject or read otherwise, each with its message", () => {
    const render =
      (options: Partial<NginxRenderOptions>, topology = awsTopology(3)) =>
      () =>
        renderNginxConf(topology, { ...base, ...options });
    const realIp = (trusted: string[], header = "X-Forwarded-For") =>
      render({ realIp: { header: header as "X-Forwarded-For", trusted } });
    expect(realIp(["172.20.0.0/16"], "X-Real-IP")).toThrow(
      'renderNginxConf: realIp.header must be "X-Forwarded-For", got "X-Real-IP"',
    );
    expect(realIp([])).toThrow("renderNginxConf: realIp.trusted must list at least one CIDR");
    for (const wrong of ["172.20.0.0", "172.20.1.0/16", "0.0.0.0/0", "172.20.0.0/33", "256.0.0.0/8", "::/0", "x/8"]) {
      expect(realIp(["10.0.0.0/8", wrong])).toThrow(
        `renderNginxConf: realIp.trusted must be IPv4 CIDRs (a.b.c.d/n, n from 1 to 32, no address bits below the prefix), got "${wrong}"`,
      );
    }
    expect(realIp(["127.0.0.1/32", "10.0.0.0/8", "172.20.0.0/16", "128.0.0.0/1"])).not.toThrow();

    const resolver = (overrides: Partial<NonNullable<NginxRenderOptions["resolver"]>>) =>
      render({ resolver: { ...AWS_OPTIONS.resolver, ...overrides } });
    expect(
      render({ resolver: AWS_OPTIONS.resolver, upstreamAddresses: ["172.20.1.1", "172.20.1.2", "172.20.1.3"] }),
    ).toThrow(
      "renderNginxConf: resolver and upstreamAddresses exclude each other (with resolver the upstream names the gateways by host)",
    );
    for (const address of ["dns.internal", "172.20.0.2:", "172.20.0.2:0", "172.20.0.2:65536", "[::1]:53", "172.20.0"]) {
      expect(resolver({ address })).toThrow(
        `renderNginxConf: resolver.address must be an IPv4 address, optionally with a port (a name would be resolved at load), got "${address}"`,
      );
    }
    for (const valid of ["10", "0s", "500ms", "10 s", ""]) {
      expect(resolver({ valid })).toThrow(
        `renderNginxConf: resolver.valid must be a time in whole s, m or h (e.g. "10s"), got "${valid}"`,
      );
    }
    for (const timeout of ["5", "0s", "1.5s"]) {
      expect(resolver({ timeout })).toThrow(
        `renderNginxConf: resolver.timeout must be a time in whole ms, s, m or h (e.g. "5s"), got "${timeout}"`,
      );
    }
    for (const zoneSize of ["16k", "1g", "1 m", "0", "32767"]) {
      expect(resolver({ zoneSize })).toThrow(
        `renderNginxConf: resolver.zoneSize must be a size of at least 32k (e.g. "1m"), got "${zoneSize}"`,
      );
    }
    expect(resolver({ zoneSize: "32k", timeout: "500ms", address: "169.254.169.253:53" })).not.toThrow();
    // The process target's gateways are at 127.0.0.1: there is no name to resolve.
    expect(render({ resolver: AWS_OPTIONS.resolver }, topologyOf({ gatewayNodes: 2, aiNodes: 1 }))).toThrow(
      'renderNginxConf: with resolver every gateway host must be a DNS name, got "127.0.0.1" for gateway-1',
    );

    for (const keepaliveTimeout of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(render({ keepaliveTimeout })).toThrow(
        `renderNginxConf: keepaliveTimeout must be a whole number of seconds, at least 1, got ${keepaliveTimeout}`,
      );
    }
    for (const workerShutdownTimeout of ["10", "0s", "-1s", "10 s", "1d"]) {
      expect(render({ workerShutdownTimeout })).toThrow(
        `renderNginxConf: workerShutdownTimeout must be a time in whole ms, s, m or h (e.g. "10s"), got "${workerShutdownTimeout}"`,
      );
    }
  });

  it.each([1, 3, 64])(
    "%i gateways: the real `nginx -t` (1.22) accepts the AWS rendering with only ` resolve` stripped and the names swapped for 127.0.0.1",
    (n) => {
      const dir = freshDir();
      const conf = renderNginxConf(awsTopology(n), {
        ...base,
        errorLog: join(dir, "error.log"),
        runtimeDir: dir,
        ...AWS_OPTIONS,
      });
      const loadable = loadableBy122(conf);
      // Only the upstream's server lines differ, each by exactly those two things.
      const [from, to] = [conf.split("\n"), loadable.split("\n")];
      expect(to).toHaveLength(from.length);
      const changed = from.flatMap((line, i) => (line === to[i] ? [] : [[line, to[i]]]));
      expect(changed).toEqual(
        Array.from({ length: n }, (_, i) => [
          `    server gateway-${i + 1}.chatgrid.internal:8081 max_fails=2 fail_timeout=5s resolve;  # gateway-${i + 1}`,
          `    server 127.0.0.1:8081 max_fails=2 fail_timeout=5s;  # gateway-${i + 1}`,
        ]),
      );
      const result = nginxTest(loadable, dir);
      expect(result.status, `nginx -t failed:\n${result.output}\n--- configuration ---\n${loadable}`).toBe(0);
      expect(result.output).toContain("test is successful");
    },
  );

  it("control: the unstripped AWS rendering needs nginx 1.27.3 (`resolve`); with only `resolve` stripped, the names must resolve at load", () => {
    const dir = freshDir();
    const conf = renderNginxConf(awsTopology(3), {
      ...base,
      errorLog: join(dir, "error.log"),
      runtimeDir: dir,
      ...AWS_OPTIONS,
    });
    const full = nginxTest(conf, dir);
    if (acceptsResolve(nginxVersion())) {
      // A newer nginx resolves `resolve` names at run time: it loads the file whether the names resolve or not.
      expect(full.status, full.output).toBe(0);
    } else {
      expect(full.status).not.toBe(0);
      expect(full.output).toContain('invalid parameter "resolve"');
    }
    const byName = nginxTest(conf.replace(/ resolve;/g, ";"), dir);
    expect(byName.status).not.toBe(0);
    expect(byName.output).toContain('host not found in upstream "gateway-1.chatgrid.internal:8081"');
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Against a real nginx: each rendering is started on free ports in front of a stub gateway, then attacked.

/** A stand-in gateway: HTTP answers JSON naming the path it got; WebSockets echo, and "flood" makes it send unendingly. */
interface StubGateway {
  port: number;
  wss: WebSocketServer;
  stop(): Promise<void>;
}

async function startStubGateway(): Promise<StubGateway> {
  const port = await freePort();
  const server: Server = createServer((request, response) => {
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ path: request.url }));
  });
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws) => {
    ws.on("error", () => undefined);
    ws.on("message", (data) => {
      if (String(data) !== "flood") return ws.send(data);
      const chunk = Buffer.alloc(64 * 1024, "x");
      const timer = setInterval(() => {
        while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4 * 1024 * 1024) ws.send(chunk);
      }, 5);
      ws.once("close", () => clearInterval(timer));
    });
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return {
    port,
    wss,
    stop: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Polls `check` until it holds; for what another process does (nginx starting, writing its log). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Edge {
  conf: string;
  http: number;
  web: number;
  errorLog(): string;
  accessLog(): string;
  /** Signals the nginx master (SIGQUIT: graceful stop). */
  signal(signal: NodeJS.Signals): void;
  /** Settles when the nginx master has exited. */
  exited: Promise<unknown>;
  stop(): Promise<void>;
}

const edges: Edge[] = [];
const clients: { terminate(): void }[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  await Promise.all(edges.splice(0).map((edge) => edge.stop()));
});

/** Renders the topology (one gateway: `gatewayPort`) and runs nginx on it, as the process target does. */
async function startEdge(
  input: Omit<TopologyConfigInput, "gatewayNodes" | "aiNodes" | "httpPort" | "webPort" | "metricsPort">,
  gatewayPort: number,
  extra: {
    webRoot?: string;
    accessLog?: boolean;
    edit?: (conf: string) => string;
    upstreamAddresses?: string[];
    /** Gateway host names to render (connected to at 127.0.0.1 only if `edit` swaps them for it). */
    hostOf?: (name: string) => string;
    /** More renderer options, over the process target's. */
    options?: Partial<NginxRenderOptions>;
  } = {},
): Promise<Edge> {
  const dir = freshDir();
  const [http, web, metrics] = (await freePorts(3)) as [number, number, number];
  const config = parseTopologyConfig({
    ...input,
    gatewayNodes: extra.upstreamAddresses?.length ?? 1,
    aiNodes: 1,
    httpPort: http,
    webPort: web,
    metricsPort: metrics,
  });
  const topology = deriveTopology(config, {
    bindHost: "127.0.0.1",
    hostOf: extra.hostOf ?? (() => "127.0.0.1"),
    gatewayPort: () => gatewayPort,
    gatewayMetricsPort: () => gatewayPort,
    aiPort: () => gatewayPort,
    redisUrl: "redis://127.0.0.1:6379",
    allowedOrigins: [],
  });
  const errorLog = join(dir, "error.log");
  const accessLog = join(dir, "access.log");
  const rendered = renderNginxConf(topology, {
    runtimeDir: dir,
    errorLog,
    accessLog: extra.accessLog ? accessLog : "off",
    listenHost: "127.0.0.1",
    webRoot: extra.webRoot,
    user: isRoot ? "root" : undefined,
    upstreamAddresses: extra.upstreamAddresses,
    ...extra.options,
  });
  const conf = extra.edit ? extra.edit(rendered) : rendered;
  const file = join(dir, "nginx.conf");
  writeFileSync(file, conf);
  const child = spawn(nginxBinary(), ["-c", file, "-p", dir, "-e", errorLog, "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (data) => (output += data));
  child.stderr.on("data", (data) => (output += data));
  const exited = once(child, "exit");
  const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");
  const edge: Edge = {
    conf,
    http,
    web,
    errorLog: () => read(errorLog),
    accessLog: () => read(accessLog),
    signal: (signal) => child.kill(signal),
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
  edges.push(edge);
  await until(`nginx on port ${http}`, async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${output}${read(errorLog)}`);
    const response = await raw(http, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").catch(
      () => undefined,
    );
    return response?.body === "ok\n";
  });
  return edge;
}

interface RawResponse {
  status?: number;
  /** Every header line, names in lower case (a header sent twice shows twice). */
  headers: [string, string][];
  body: string;
  /** Bytes received in all. */
  bytes: number;
  /** `complete`: a whole response arrived (the socket is then closed by us); otherwise how nginx ended it. */
  ended: "complete" | "close" | "reset";
  elapsedMs: number;
}

/** One exchange on a raw TCP socket: what a client that does not follow HTTP sees. */
function raw(
  port: number,
  request: string | Buffer,
  options: { localAddress?: string; timeoutMs?: number; dripEveryMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: "127.0.0.1", port, localAddress: options.localAddress });
    let received = Buffer.alloc(0);
    let settled = false;
    const parse = (ended: RawResponse["ended"]): RawResponse => {
      const text = received.toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const head = split === -1 ? "" : text.slice(0, split);
      const [statusLine, ...lines] = head.split("\r\n");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1];
      return {
        status: status ? Number(status) : undefined,
        headers: lines.map((line) => {
          const colon = line.indexOf(":");
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
        body: split === -1 ? "" : text.slice(split + 4),
        bytes: received.length,
        ended,
        elapsedMs: Date.now() - started,
      };
    };
    // A slowloris keeps sending a byte now and then, so the connection is never idle.
    let drip: NodeJS.Timeout | undefined;
    const finish = (ended: RawResponse["ended"]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(drip);
      socket.destroy();
      resolve(parse(ended));
    };
    const timer = setTimeout(() => {
      settled = true;
      clearInterval(drip);
      socket.destroy();
      reject(new Error(`no response and no close within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    socket.on("connect", () => {
      socket.write(request);
      if (options.dripEveryMs) drip = setInterval(() => socket.write("a"), options.dripEveryMs);
    });
    socket.on("data", (data) => {
      received = Buffer.concat([received, data]);
      const response = parse("complete");
      const length = Number(response.headers.find(([name]) => name === "content-length")?.[1] ?? Number.NaN);
      if (response.status !== undefined && Buffer.byteLength(response.body, "latin1") >= length) finish("complete");
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET" || error.code === "EPIPE") finish("reset");
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        clearInterval(drip);
        reject(error);
      }
    });
    socket.on("close", () => finish("close"));
  });
}

const headerValues = (response: { headers: [string, string][] }, name: string) =>
  response.headers.filter(([n]) => n === name).map(([, value]) => value);

/** The protocol's error body, its JSON type, and every security header exactly once. */
function expectJsonError(response: RawResponse, status: number, code: string): void {
  expect(response.status, `${response.status} ${response.body}`).toBe(status);
  expect(headerValues(response, "content-type")).toEqual(["application/json"]);
  const body = JSON.parse(response.body) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(headerValues(response, name.toLowerCase()), name).toEqual([value]);
  }
  // server_tokens off: no version.
  expect(headerValues(response, "server")).toEqual(["nginx"]);
}

type WsAttempt =
  | { kind: "open"; ws: WebSocket }
  | { kind: "refused"; status: number; headers: Record<string, string | string[] | undefined>; body: string }
  | { kind: "failed"; error: string };

/** Opens a WebSocket from `localAddress`; a refusal resolves with nginx's status and body. */
function openWs(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<WsAttempt> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, headers });
    clients.push(ws);
    ws.on("error", (error) => resolve({ kind: "failed", error: String(error) }));
    ws.once("open", () => resolve({ kind: "open", ws }));
    ws.once("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (data: Buffer) => (body += data));
      response.on("end", () =>
        resolve({ kind: "refused", status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    });
  });
}

function opened(attempt: WsAttempt): WebSocket {
  if (attempt.kind !== "open") throw new Error(`the WebSocket did not open: ${JSON.stringify(attempt)}`);
  return attempt.ws;
}

function expectRefused(attempt: WsAttempt, status: number, code: string): void {
  expect(attempt.kind, JSON.stringify(attempt)).toBe("refused");
  if (attempt.kind !== "refused") return;
  expect(attempt.status).toBe(status);
  expect(attempt.headers["content-type"]).toBe("application/json");
  expect(attempt.headers["x-content-type-options"]).toBe("nosniff");
  expect((JSON.parse(attempt.body) as { error: { code: string } }).error.code).toBe(code);
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, "message");
  ws.send(text);
  return String((await reply)[0]);
}

const wsUrl = (port: number, query = "") => `ws://127.0.0.1:${port}/ws/chat${query}`;
const RUN_OUT = "worker_connections are not enough";

describe("the rendered nginx, attacked (a real nginx in front of a stub gateway)", () => {
  let gateway: StubGateway;
  afterAll(async () => {
    await gateway?.stop();
  });
  const stub = async () => {
    gateway ??= await startStubGateway();
    return gateway;
  };

  it("WebSockets per address: the one over wsConnectionsPerAddress gets 429 too_many_connections; another address still connects; closing one frees a slot", async () => {
    const edge = await startEdge({ wsConnectionsPerAddress: 5 }, (await stub()).port);
    const attacker = "127.0.0.21";
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 5; i++) sockets.push(opened(await openWs(wsUrl(edge.http), attacker)));
    expectRefused(await openWs(wsUrl(edge.http), attacker), 429, "too_many_connections");
    // Both public servers count in one zone: the web port does not give the address five more.
    expectRefused(await openWs(wsUrl(edge.web), attacker), 429, "too_many_connections");

    const neighbour = opened(await openWs(wsUrl(edge.http), "127.0.0.22"));
    expect(await echo(neighbour, "still served")).toBe("still served");

    sockets[0]!.close();
    await once(sockets[0]!, "close");
    const again = opened(await openWs(wsUrl(edge.http), attacker));
    expect(await echo(again, "a freed slot")).toBe("a freed slot");
    expectRefused(await openWs(wsUrl(edge.http), attacker), 429, "too_many_connections");
    expect(edge.errorLog()).not.toContain(RUN_OUT);
  });

  it("a WebSocket frame many times nginx's proxy buffer crosses intact both ways (a snapshot, a long message)", async () => {
    const edge = await startEdge({}, (await stub()).port);
    const ws = opened(await openWs(wsUrl(edge.http), "127.0.0.23"));
    // Not one repeated byte: pieces reordered or dropped at the buffer's edges would show.
    const big = Array.from({ length: 48 * WS_PROXY_BUFFER.bytes }, (_, i) =>
      String.fromCharCode(33 + ((i * 7) % 90)),
    ).join("");
    expect(await echo(ws, big)).toBe(big);
    expect(await echo(ws, "and a small one after it")).toBe("and a small one after it");
    ws.close();
  });

  it("all addresses together: past maxClientConnections sockets get 429 and requests 503 JSON, and nginx never runs out of worker_connections", async () => {
    const max = 20;
    const attempts = 200;
    // Without the total limit these sockets (a client and an upstream connection each) would need more
    // connections than a worker has: the next test shows nginx running out then.
    expect(2 * attempts).toBeGreaterThan(connectionBudget(max).workerConnections);
    const edge = await startEdge({ maxClientConnections: max, wsConnectionsPerAddress: 1000 }, (await stub()).port);
    const results = await Promise.all(
      Array.from({ length: attempts }, (_, i) => openWs(wsUrl(edge.http), `127.0.4.${1 + (i % 50)}`)),
    );
    const open = results.filter((r) => r.kind === "open");
    expect(open).toHaveLength(max);
    for (const refused of results.filter((r) => r.kind !== "open")) expectRefused(refused, 429, "too_many_connections");
    expectJsonError(
      await raw(edge.http, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", {
        localAddress: "127.0.4.99",
      }),
      503,
      "unavailable",
    );
    expect(edge.errorLog()).toContain('limiting connections by zone "chatgrid_total"');
    expect(edge.errorLog()).not.toContain(RUN_OUT);

    // Recovery: once the sockets close, a new one opens.
    await Promise.all(
      open.map(async (r) => {
        const ws = opened(r);
        ws.close();
        await once(ws, "close");
      }),
    );
    expect(await echo(opened(await openWs(wsUrl(edge.http), "127.0.4.100")), "room again")).toBe("room again");
  });

  it("control: the same flood without the total limit makes nginx run out of worker_connections (the check above can fail)", async () => {
    const edge = await startEdge({ maxClientConnections: 20, wsConnectionsPerAddress: 1000 }, (await stub()).port, {
      edit: (conf) => conf.replace(/^\s*limit_conn chatgrid_total \d+;\n/gm, ""),
    });
    expect(edge.conf).not.toContain("limit_conn chatgrid_total");
    await Promise.all(Array.from({ length: 200 }, (_, i) => openWs(wsUrl(edge.http), `127.0.5.${1 + (i % 50)}`)));
    await until("nginx to log that it ran out", () => edge.errorLog().includes(RUN_OUT));
  });

  it("an idle WebSocket outlives clientTimeoutSeconds (1 s): upgraded sockets follow the 1 h proxy timeouts", async () => {
    const edge = await startEdge({ clientTimeoutSeconds: 1 }, (await stub()).port);
    const ws = opened(await openWs(wsUrl(edge.http), "127.0.0.31"));
    let closed = false;
    ws.on("close", () => (closed = true));
    // The timeout is what is tested: idle for 2.5 times it.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(closed).toBe(false);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await echo(ws, "after a quiet while")).toBe("after a quiet while");
  });

  it("slow clients are cut after clientTimeoutSeconds with no response at all: slow request line, dripping headers, slow body, silence", async () => {
    const edge = await startEdge({ clientTimeoutSeconds: 1 }, (await stub()).port);
    const [line, headers, body, silence] = await Promise.all([
      raw(edge.http, "GET /api/health HT", { localAddress: "127.0.0.41" }),
      // The header timer runs from the first byte: a byte every 200 ms does not extend it.
      raw(edge.http, "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ", {
        localAddress: "127.0.0.42",
        dripEveryMs: 200,
      }),
      raw(edge.http, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", {
        localAddress: "127.0.0.43",
      }),
      raw(edge.http, "", { localAddress: "127.0.0.44" }),
    ]);
    for (const cut of [line, headers, body, silence]) {
      // No 408 or any byte: nginx drops a client that times out (its access log says 408).
      expect(cut.bytes).toBe(0);
      expect(cut.elapsedMs).toBeGreaterThanOrEqual(900);
      expect(cut.elapsedMs).toBeLessThan(1000 + 1500);
    }
    // reset_timedout_connection: a timed-out request is reset, not closed; a connection that never sent a byte
    // had no request yet and is closed.
    expect([line.ended, headers.ended, body.ended]).toEqual(["reset", "reset", "reset"]);
    expect(silence.ended).toBe("close");
  });

  it("a WebSocket client that stops reading while data waits for it is cut by send_timeout", async () => {
    const gw = await stub();
    const edge = await startEdge({ clientTimeoutSeconds: 1 }, gw.port);
    const upstream = once(gw.wss, "connection") as Promise<[WebSocket]>;
    const socket = connect({ host: "127.0.0.1", port: edge.http, localAddress: "127.0.0.51" });
    clients.push({ terminate: () => socket.destroy() });
    socket.on("error", () => undefined);
    await once(socket, "connect");
    socket.write(
      `GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:${edge.http}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const [handshake] = (await once(socket, "data")) as [Buffer];
    expect(handshake.toString("latin1")).toMatch(/^HTTP\/1\.1 101 /);
    const [gatewaySide] = await upstream;
    const gatewayClosed = once(gatewaySide, "close");
    // A masked text frame "flood" (mask key 0: the payload stays as it is).
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | 5, 0, 0, 0, 0]), Buffer.from("flood")]));
    await once(socket, "data");
    socket.pause();
    const pausedAt = Date.now();
    await within(10_000, gatewayClosed, "nginx to cut the socket that stopped reading");
    const elapsed = Date.now() - pausedAt;
    // Buffers fill first, then 1 s without progress.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(10_000);
  });

  it("every error nginx answers itself is the protocol's JSON body with the security headers", async () => {
    const webRoot = join(freshDir(), "web");
    mkdirSync(join(webRoot, "assets"), { recursive: true });
    writeFileSync(join(webRoot, "index.html"), "<!doctype html><title>chatgrid</title>");
    writeFileSync(join(webRoot, "assets", "app.js"), "console.log('app');\n");
    const edge = await startEdge({ apiRatePerSecond: 1, apiBurst: 0 }, (await stub()).port, { webRoot });
    let address = 60;
    const send = (request: string | Buffer) => raw(edge.http, request, { localAddress: `127.0.0.${address++}` });
    const get = (path: string, headers = "") =>
      `GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`;

    expectJsonError(await send("G@T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request");
    expectJsonError(await send("GET /api/health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"), 400, "bad_request");
    expectJsonError(await send("GET /api/health HTTP/1.1\r\n\r\n"), 400, "bad_request");
    expectJsonError(await send("GET /api/health HTTP/2.0\r\nHost: x\r\n\r\n"), 505, "bad_request");
    expectJsonError(await send(get(`/api/${"a".repeat(LARGE_HEADER_BUFFER.bytes + 100)}`)), 414, "headers_too_large");
    // One header line above a large buffer, and many lines that together fill every buffer: nginx's 494, sent as 431.
    expectJsonError(
      await send(get("/api/health", `X-Huge: ${"h".repeat(LARGE_HEADER_BUFFER.bytes + 100)}\r\n`)),
      431,
      "headers_too_large",
    );
    const many = Array.from(
      { length: LARGE_HEADER_BUFFER.count * 3 },
      (_, i) => `X-Many-${i}: ${"m".repeat(4000)}\r\n`,
    );
    expectJsonError(await send(get("/api/health", many.join(""))), 431, "headers_too_large");
    const body = JSON.stringify({ message: "z".repeat(70_000) });
    expectJsonError(
      await send(
        `POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      ),
      413,
      "payload_too_large",
    );
    expectJsonError(
      await send("POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
      501,
      "bad_request",
    );
    expectJsonError(
      await send("POST /assets/app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
      405,
      "bad_request",
    );
    // A named location keeps the URI: without its empty `types`, this body would be typed by the .js extension.
    expectJsonError(await send(get("/assets/missing.js")), 404, "not_found");

    // The API's rate limit (1 r/s, no burst): the second request at once is refused, with Retry-After.
    const limited = `127.0.0.${address++}`;
    const first = await raw(edge.http, get("/api/health"), { localAddress: limited });
    expect(first.status).toBe(200);
    const second = await raw(edge.http, get("/api/health"), { localAddress: limited });
    expectJsonError(second, 429, "rate_limited");
    expect(headerValues(second, "retry-after")).toEqual(["1"]);
    // Cancel has a bucket of its own: the same address, over its API rate, still reaches a gateway to stop answers.
    const cancel = await raw(
      edge.http,
      "POST /api/cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
      { localAddress: limited },
    );
    expect(cancel.status).toBe(200);
    expect(JSON.parse(cancel.body).path).toBe("/api/cancel");
    // Nothing answered with nginx's own HTML page.
    expect(edge.errorLog()).not.toContain("empty URI");
  });

  it("an unreachable gateway is 503 unavailable JSON on the API and on the WebSocket (nginx's own 502)", async () => {
    const closed = await freePort();
    const edge = await startEdge({}, closed);
    expectJsonError(
      await raw(edge.http, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      503,
      "unavailable",
    );
    expectRefused(await openWs(wsUrl(edge.http), "127.0.0.81"), 503, "unavailable");
    expect(edge.errorLog()).toContain("connect() failed");
  });

  it("by address, nginx starts and serves with any subset of gateways down: two of three refuse, then all three", async () => {
    const up = await stub();
    // Three gateways on the stub's port: only 127.0.0.1 listens there; 127.0.0.2 and .3 refuse (down gateways).
    const edge = await startEdge({}, up.port, { upstreamAddresses: ["127.0.0.2", "127.0.0.1", "127.0.0.3"] });
    expect(edge.conf).toContain(`server 127.0.0.2:${up.port} max_fails=2 fail_timeout=5s;  # gateway-1`);
    // Whichever gateway ip_hash picks for each client address, a refused connection moves on to the live one.
    for (const localAddress of ["127.0.0.1", "127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1", "127.0.5.1"]) {
      const response = await raw(edge.http, "GET /api/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", {
        localAddress,
      });
      expect(response.status, localAddress).toBe(200);
      expect(response.body).toBe('{"path":"/api/ping"}');
    }
    const all = await startEdge({}, await freePort(), { upstreamAddresses: ["127.0.0.1", "127.0.0.2", "127.0.0.3"] });
    // startEdge waited for /healthz: nginx is up with no gateway at all; the API answers 503 JSON.
    expectJsonError(
      await raw(all.http, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      503,
      "unavailable",
    );
  });

  it("the access log has no token: not from the query string, not from Authorization", async () => {
    const edge = await startEdge({}, (await stub()).port, { accessLog: true });
    const secret = "SECRET-a1b2c3";
    const api = await raw(
      edge.http,
      `GET /api/history?conversationId=c1&token=${secret} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nConnection: close\r\n\r\n`,
    );
    // The gateway got the query: only the log leaves it out.
    expect(JSON.parse(api.body).path).toBe(`/api/history?conversationId=c1&token=${secret}`);
    const ws = opened(await openWs(wsUrl(edge.http, `?token=${secret}`), "127.0.0.91"));
    ws.close();
    await once(ws, "close");
    await raw(edge.http, `GET /api/history?token=${secret} HTTP/2.0\r\nHost: x\r\n\r\n`);
    // nginx writes a line after it answered: wait for the last request's (the start probe's /healthz is first).
    await until("the 505's access log line", () => / 505 /.test(edge.accessLog()));
    const log = edge.accessLog();
    expect(log).toContain('"GET /api/history HTTP/1.1" 200 ');
    expect(log).toContain('"GET /ws/chat HTTP/1.1" 101 ');
    expect(log).toMatch(/" 505 /);
    expect(log).not.toContain(secret);
    expect(log).not.toContain("Bearer");
  });

  it("the web client, the API and nginx's errors carry the security headers, once each, on both public ports", async () => {
    const webRoot = join(freshDir(), "web");
    mkdirSync(join(webRoot, "assets"), { recursive: true });
    writeFileSync(join(webRoot, "index.html"), "<!doctype html><title>chatgrid</title>");
    writeFileSync(join(webRoot, "assets", "app.js"), "console.log('app');\n");
    const edge = await startEdge({}, (await stub()).port, { webRoot });
    for (const port of [edge.http, edge.web]) {
      for (const [path, status] of [
        ["/", 200],
        ["/a/route/of/the/app", 200],
        ["/assets/app.js", 200],
        ["/assets/missing.js", 404],
        ["/api/health", 200],
      ] as const) {
        const response = await raw(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        expect(response.status, path).toBe(status);
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
          expect(headerValues(response, name.toLowerCase()), `${name} on ${path}`).toEqual([value]);
        }
        if (path === "/assets/app.js") {
          expect(headerValues(response, "cache-control")).toEqual(["public, max-age=31536000, immutable"]);
        }
      }
    }
    expect(SECURITY_HEADERS["Content-Security-Policy"]).toBe(CONTENT_SECURITY_POLICY);
  });
});

/** Stand-in gateways on one port at each of `hosts`: HTTP answers JSON with the gateway and the headers it got. */
async function startHeaderStubs(hosts: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  // Free on every address, so each host can bind it.
  const port = await freePort("0.0.0.0");
  const servers = await Promise.all(
    hosts.map(async (host) => {
      const server = createServer((request, response) => {
        response.setHeader("content-type", "application/json");
        response.end(
          JSON.stringify({
            gateway: host,
            realIp: request.headers["x-real-ip"],
            forwardedFor: request.headers["x-forwarded-for"],
          }),
        );
      });
      server.listen(port, host);
      await once(server, "listening");
      return server;
    }),
  );
  return {
    port,
    stop: async () => {
      await Promise.all(
        servers.map((server) => {
          server.closeAllConnections();
          return new Promise((resolve) => server.close(resolve));
        }),
      );
    },
  };
}

interface Seen {
  gateway: string;
  realIp: string;
  forwardedFor: string;
}

describe("the AWS options in a real nginx (1.22: the AWS rendering with only ` resolve` stripped)", () => {
  const stubs: { stop(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(stubs.map((stub) => stub.stop()));
  });
  const headerStubs = async (hosts = ["127.0.0.1"]) => {
    const stub = await startHeaderStubs(hosts);
    stubs.push(stub);
    return stub;
  };
  const wsStub = async () => {
    const stub = await startStubGateway();
    stubs.push(stub);
    return stub;
  };
  /** The AWS options with the load balancer played by 127.0.0.1 (trusted: 127.0.0.0/8). */
  const awsEdge = (
    input: Parameters<typeof startEdge>[0],
    gatewayPort: number,
    options: Partial<NginxRenderOptions> = {},
  ) =>
    startEdge(input, gatewayPort, {
      accessLog: true,
      hostOf: (name) => `${name}.chatgrid.internal`,
      edit: loadableBy122,
      options: { ...AWS_OPTIONS, realIp: { header: "X-Forwarded-For", trusted: ["127.0.0.0/8"] }, ...options },
    });
  const get = async (port: number, forwardedFor: string | undefined, localAddress = "127.0.0.1") => {
    const header = forwardedFor === undefined ? "" : `X-Forwarded-For: ${forwardedFor}\r\n`;
    return raw(port, `GET /api/whoami HTTP/1.1\r\nHost: x\r\n${header}Connection: close\r\n\r\n`, { localAddress });
  };
  const seen = (response: RawResponse): Seen => {
    expect(response.status, response.body).toBe(200);
    return JSON.parse(response.body) as Seen;
  };

  it("from a trusted address the client is the last X-Forwarded-For entry: the gateway's X-Real-IP and the access log say so, a spoofed entry in front is ignored", async () => {
    const edge = await awsEdge({}, (await headerStubs()).port);
    expect(edge.conf).toContain("resolver 172.20.0.2 valid=10s ipv6=off;");
    expect(edge.conf).toContain("zone chatgrid_gateways 1m;");
    const response = seen(await get(edge.http, "203.0.113.66, 198.51.100.7"));
    expect(response.realIp).toBe("198.51.100.7");
    // $proxy_add_x_forwarded_for appends the (rewritten) client address to what arrived.
    expect(response.forwardedFor).toBe("203.0.113.66, 198.51.100.7, 198.51.100.7");
    await until("the access log line", () => edge.accessLog().includes("/api/whoami"));
    expect(edge.accessLog()).toMatch(/^198\.51\.100\.7 \[.*"GET \/api\/whoami HTTP\/1\.1" 200 /m);
    expect(edge.accessLog()).not.toContain("203.0.113.66");
    // Without the header the connection's own address stays the client.
    expect(seen(await get(edge.http, undefined)).realIp).toBe("127.0.0.1");
  });

  it("from an untrusted address X-Forwarded-For is ignored: the client is the connection's address", async () => {
    const edge = await awsEdge({}, (await headerStubs()).port, {
      realIp: { header: "X-Forwarded-For", trusted: ["127.0.0.1/32"] },
    });
    expect(seen(await get(edge.http, "198.51.100.7", "127.0.0.5")).realIp).toBe("127.0.0.5");
    expect(seen(await get(edge.http, "198.51.100.7", "127.0.0.1")).realIp).toBe("198.51.100.7");
  });

  it("the API's per-address rate limit counts each X-Forwarded-For client apart, whatever a client writes in front", async () => {
    const edge = await awsEdge({ apiRatePerSecond: 1, apiBurst: 0 }, (await headerStubs()).port);
    expect(seen(await get(edge.http, "10.9.9.9, 198.51.100.7")).realIp).toBe("198.51.100.7");
    // The same client with another spoofed entry is the same address: over 1 r/s.
    expectJsonError(await get(edge.http, "10.9.9.10, 198.51.100.7"), 429, "rate_limited");
    // Another client through the same load balancer address has its own bucket.
    expect(seen(await get(edge.http, "198.51.100.7, 198.51.100.8")).realIp).toBe("198.51.100.8");
    expectJsonError(await get(edge.http, "198.51.100.8"), 429, "rate_limited");
  });

  it("control: without realIp every client behind the load balancer shares one bucket (the check above can fail)", async () => {
    const edge = await awsEdge({ apiRatePerSecond: 1, apiBurst: 0 }, (await headerStubs()).port, {
      realIp: undefined,
    });
    expect(edge.conf).not.toContain("real_ip");
    expect(seen(await get(edge.http, "198.51.100.7")).realIp).toBe("127.0.0.1");
    expectJsonError(await get(edge.http, "198.51.100.8"), 429, "rate_limited");
  });

  it("open WebSockets per address count each X-Forwarded-For client apart", async () => {
    const edge = await awsEdge({ wsConnectionsPerAddress: 2 }, (await wsStub()).port);
    const as = (address: string) => ({ "X-Forwarded-For": `203.0.113.1, ${address}` });
    opened(await openWs(wsUrl(edge.http), "127.0.0.1", as("198.51.100.7")));
    opened(await openWs(wsUrl(edge.http), "127.0.0.1", as("198.51.100.7")));
    expectRefused(await openWs(wsUrl(edge.http), "127.0.0.1", as("198.51.100.7")), 429, "too_many_connections");
    const other = opened(await openWs(wsUrl(edge.http), "127.0.0.1", as("198.51.100.8")));
    expect(await echo(other, "its own count")).toBe("its own count");
  });

  it("ip_hash spreads the clients behind one load balancer address over the gateways, each client pinned; without realIp all land on one", async () => {
    const gateways = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    const stub = await headerStubs(gateways);
    const clientsOf = Array.from({ length: 12 }, (_, i) => `198.51.${i + 1}.7`);
    const route = async (port: number) =>
      Promise.all(clientsOf.map(async (client) => seen(await get(port, `203.0.113.1, ${client}`)).gateway));

    // realIp alone (no resolver) with the gateways by address: three of them on this machine.
    const edge = await startEdge({}, stub.port, {
      upstreamAddresses: gateways,
      options: { realIp: { header: "X-Forwarded-For", trusted: ["127.0.0.0/8"] } },
    });
    const first = await route(edge.http);
    expect(new Set(first).size).toBeGreaterThan(1);
    expect(await route(edge.http)).toEqual(first);

    const without = await startEdge({}, stub.port, { upstreamAddresses: gateways });
    expect(new Set(await route(without.http)).size).toBe(1);
  });

  it("keepaliveTimeout: nginx closes an idle client connection after it (1 s here); without it the connection outlives that", async () => {
    /** One keep-alive request; resolves with the socket once the response is in, and when nginx closed it after. */
    const idle = (port: number) =>
      new Promise<{ socket: Socket; closedAfter: Promise<number> }>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port });
        clients.push({ terminate: () => socket.destroy() });
        socket.once("error", reject);
        socket.once("connect", () => socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        let text = "";
        const onData = (data: Buffer) => {
          text += data.toString("latin1");
          if (!text.endsWith("\r\n\r\nok\n")) return;
          socket.off("data", onData);
          socket.on("error", () => undefined);
          const at = Date.now();
          resolve({
            socket,
            closedAfter: new Promise((closed) => socket.once("close", () => closed(Date.now() - at))),
          });
        };
        socket.on("data", onData);
      });

    const short = await awsEdge({}, (await headerStubs()).port, { keepaliveTimeout: 1 });
    expect(short.conf).toContain("keepalive_timeout 1s;");
    const elapsed = await within(10_000, (await idle(short.http)).closedAfter, "nginx to close the idle connection");
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(2500);

    const long = await awsEdge({}, (await headerStubs()).port, { keepaliveTimeout: undefined });
    expect(long.conf).not.toContain("keepalive_timeout");
    const { socket, closedAfter } = await idle(long.http);
    let closed = false;
    void closedAfter.then(() => (closed = true));
    // The timeout is what is tested: idle for twice the short one.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(closed).toBe(false);
    const again = once(socket, "data");
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(String((await within(5000, again, "a second response on the kept connection"))[0])).toMatch(
      /^HTTP\/1\.1 200 /,
    );
  });

  /** Sends SIGQUIT (graceful stop) and waits until nginx no longer accepts connections. */
  const gracefulStop = async (edge: Edge) => {
    edge.signal("SIGQUIT");
    await until("nginx to stop accepting", () =>
      raw(edge.http, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { timeoutMs: 1000 }).then(
        () => false,
        () => true,
      ),
    );
  };

  it("workerShutdownTimeout: a graceful stop closes an open WebSocket after it (1 s here) and nginx exits", async () => {
    const edge = await awsEdge({}, (await wsStub()).port, { workerShutdownTimeout: "1s" });
    expect(edge.conf).toContain("worker_shutdown_timeout 1s;");
    const ws = opened(await openWs(wsUrl(edge.http), "127.0.0.1", { "X-Forwarded-For": "198.51.100.7" }));
    expect(await echo(ws, "before the stop")).toBe("before the stop");
    const closed = once(ws, "close");
    const at = Date.now();
    edge.signal("SIGQUIT");
    await within(10_000, closed, "nginx to close the WebSocket");
    const elapsed = Date.now() - at;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5000);
    await within(10_000, edge.exited, "nginx to exit");
  });

  it("control: without workerShutdownTimeout a graceful stop leaves the WebSocket open (nginx waits for it)", async () => {
    const edge = await awsEdge({}, (await wsStub()).port, { workerShutdownTimeout: undefined });
    expect(edge.conf).not.toContain("worker_shutdown_timeout");
    const ws = opened(await openWs(wsUrl(edge.http), "127.0.0.1", { "X-Forwarded-For": "198.51.100.7" }));
    await gracefulStop(edge);
    // Twice the timeout above.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await echo(ws, "still open while nginx stops")).toBe("still open while nginx stops");
  });
});

describe("maxClientConnectionsWithin", () => {
  it("gives the largest client count whose connection budget fits the file limit", () => {
    for (const files of [1024, 20_000, 65_536, 1_048_576]) {
      const clients = maxClientConnectionsWithin(files);
      expect(connectionBudget(clients).rlimitNofile).toBeLessThanOrEqual(files);
      expect(connectionBudget(clients + 1).rlimitNofile).toBeGreaterThan(files);
    }
  });
});
