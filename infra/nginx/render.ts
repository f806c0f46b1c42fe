import type { Topology } from "../topology";

/** What differs between targets in nginx's own housekeeping (not in the routing, which is the topology's). */
export interface NginxRenderOptions {
  /** Where nginx writes its pid and temp files; the process target uses its state dir, containers their defaults. */
  runtimeDir?: string;
  errorLog: string;
  /** `off` or a path (written in the `chatgrid` log format: no query string, no credentials). */
  accessLog: string;
  /** The built web client (index.html). Without it the web port answers 503 with a hint. */
  webRoot?: string;
  /** Address the public servers listen on (`127.0.0.1` for processes, all interfaces in containers). */
  listenHost?: string;
  /** nginx `user` directive (a root master otherwise runs workers as nobody). */
  user?: string;
  workerProcesses?: number | "auto";
  /**
   * The IPv4 address nginx connects to for each gateway, in the topology's order, instead of its host name. nginx
   * resolves upstream names once, when it loads the file, and refuses to start if one does not resolve: the Docker
   * target gives the gateways fixed addresses and renders them here, so nginx needs no DNS and starts and serves
   * with any gateways down. Without it the upstream lists the gateways' hosts (the process target: 127.0.0.1).
   */
  upstreamAddresses?: readonly string[];
  /**
   * The client address is taken from X-Forwarded-For on connections from `trusted` (IPv4 CIDRs): the AWS target,
   * where every request arrives from a load balancer node. nginx takes the last entry, the one the load balancer
   * appended (`real_ip_recursive` stays off), so a client cannot choose its address by writing the header itself.
   * ip_hash, the per-address limits, X-Real-IP to the gateways and the access log then see the client, not the
   * load balancer. Without it the connection's own address is the client's (docs/aws.md).
   */
  realIp?: { header: "X-Forwarded-For"; trusted: readonly string[] };
  /**
   * Resolve the gateways' names at run time (the AWS target: Cloud Map names whose addresses change when a task is
   * replaced): a `resolver` at `address` (IPv4, optionally with a port) whose answers are kept for `valid` (e.g.
   * "10s"), a shared zone of `zoneSize` (default 1m) for the upstream, and `resolve` on every upstream server, so
   * the workers follow the names without a reload and nginx loads the file whether they resolve or not. `timeout` is
   * `resolver_timeout` (default 5s): after a failed query nginx keeps the addresses it has and asks again after it
   * (a name that does not exist loses its addresses). Needs nginx 1.27.3 or later (`resolve` on upstream servers);
   * the gateways must be named by host, so it excludes upstreamAddresses (docs/aws.md).
   */
  resolver?: { address: string; valid: string; zoneSize?: string; timeout?: string };
  /**
   * Seconds an idle client keep-alive connection stays open (`keepalive_timeout`; nginx's default 75 s otherwise).
   * Behind a load balancer it must exceed the balancer's idle timeout, so the balancer closes idle connections
   * first and never sends a request on one nginx is closing (docs/aws.md).
   */
  keepaliveTimeout?: number;
  /**
   * `worker_shutdown_timeout` (e.g. "10s"): a graceful stop or reload closes what is still open (WebSockets) after
   * this, instead of waiting for every socket to end (docs/aws.md). Without it nginx waits.
   */
  workerShutdownTimeout?: string;
  /**
   * Only the web port's server (API, WebSocket and the client on one port): behind a load balancer nothing reaches
   * the entry or stub_status ports, and the AWS task definition that carries this file has a 64 KiB limit.
   */
  webPortOnly?: boolean;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The `host:port` nginx connects to for each gateway: its host, or its fixed address from upstreamAddresses. */
function upstreamTargets(topology: Topology, addresses: readonly string[] | undefined): string[] {
  if (addresses === undefined) return topology.gateways.map((g) => `${g.host}:${g.port}`);
  if (addresses.length !== topology.gateways.length) {
    throw new Error(
      `renderNginxConf: upstreamAddresses has ${addresses.length} addresses for ${topology.gateways.length} gateways`,
    );
  }
  const wrong = addresses.find((address) => !IPV4.test(address));
  if (wrong !== undefined) {
    throw new Error(`renderNginxConf: upstreamAddresses must be IPv4 addresses (no names to resolve), got "${wrong}"`);
  }
  return topology.gateways.map((g, i) => `${addresses[i]}:${g.port}`);
}

/** A time nginx reads in milliseconds (`worker_shutdown_timeout`, `resolver_timeout`), written with its unit. */
const MSEC_TIME = /^[1-9]\d*(ms|s|m|h)$/;
/** A time nginx reads in seconds (the resolver's `valid=`). */
const SEC_TIME = /^[1-9]\d*(s|m|h)$/;
/** A DNS name (not an address): labels of letters, digits and hyphens, at least one letter somewhere. */
const DNS_NAME =
  /^(?=.{1,253}$)(?=.*[a-zA-Z])[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/** nginx refuses a shared zone smaller than 8 memory pages (32k with 4 KiB pages). */
const MIN_ZONE_BYTES = 32 * 1024;

/** Defaults of the resolver option. */
export const RESOLVER_DEFAULTS = { zoneSize: "1m", timeout: "5s" } as const;

const ipv4Value = (address: string): number =>
  address.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);

/** An IPv4 CIDR nginx takes as written: a prefix from 1 to 32 and no address bits below it. */
function isIpv4Cidr(cidr: string): boolean {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(cidr);
  if (!match || !IPV4.test(match[1]!)) return false;
  const bits = Number(match[2]);
  if (bits < 1 || bits > 32) return false;
  return ipv4Value(match[1]!) % 2 ** (32 - bits) === 0;
}

/** Bytes of an nginx size ("64k", "1m", "65536"); NaN when it is not one. */
function sizeBytes(size: string): number {
  const match = /^([1-9]\d*)([kKmM]?)$/.exec(size);
  if (!match) return Number.NaN;
  const unit = match[2]!.toLowerCase();
  return Number(match[1]) * (unit === "k" ? 1024 : unit === "m" ? 1024 * 1024 : 1);
}

/** Refuses option values nginx would reject or read otherwise, each with a message naming the option. */
function validateOptions(topology: Topology, options: NginxRenderOptions): void {
  const { realIp, resolver, keepaliveTimeout, workerShutdownTimeout } = options;
  if (realIp !== undefined) {
    if (realIp.header !== "X-Forwarded-For") {
      throw new Error(`renderNginxConf: realIp.header must be "X-Forwarded-For", got "${realIp.header}"`);
    }
    if (realIp.trusted.length === 0) throw new Error("renderNginxConf: realIp.trusted must list at least one CIDR");
    const wrong = realIp.trusted.find((cidr) => !isIpv4Cidr(cidr));
    if (wrong !== undefined) {
      throw new Error(
        `renderNginxConf: realIp.trusted must be IPv4 CIDRs (a.b.c.d/n, n from 1 to 32, no address bits below the prefix), got "${wrong}"`,
      );
    }
  }
  if (resolver !== undefined) {
    if (options.upstreamAddresses !== undefined) {
      throw new Error(
        "renderNginxConf: resolver and upstreamAddresses exclude each other (with resolver the upstream names the gateways by host)",
      );
    }
    const [host, port, ...rest] = resolver.address.split(":");
    const portOk = port === undefined || (/^[1-9]\d{0,4}$/.test(port) && Number(port) <= 65_535);
    if (!IPV4.test(host ?? "") || !portOk || rest.length > 0) {
      throw new Error(
        `renderNginxConf: resolver.address must be an IPv4 address, optionally with a port (a name would be resolved at load), got "${resolver.address}"`,
      );
    }
    if (!SEC_TIME.test(resolver.valid)) {
      throw new Error(
        `renderNginxConf: resolver.valid must be a time in whole s, m or h (e.g. "10s"), got "${resolver.valid}"`,
      );
    }
    if (resolver.timeout !== undefined && !MSEC_TIME.test(resolver.timeout)) {
      throw new Error(
        `renderNginxConf: resolver.timeout must be a time in whole ms, s, m or h (e.g. "5s"), got "${resolver.timeout}"`,
      );
    }
    if (resolver.zoneSize !== undefined && !(sizeBytes(resolver.zoneSize) >= MIN_ZONE_BYTES)) {
      throw new Error(
        `renderNginxConf: resolver.zoneSize must be a size of at least 32k (e.g. "1m"), got "${resolver.zoneSize}"`,
      );
    }
    const unnamed = topology.gateways.find((g) => !DNS_NAME.test(g.host));
    if (unnamed !== undefined) {
      throw new Error(
        `renderNginxConf: with resolver every gateway host must be a DNS name, got "${unnamed.host}" for ${unnamed.name}`,
      );
    }
  }
  if (keepaliveTimeout !== undefined && !(Number.isSafeInteger(keepaliveTimeout) && keepaliveTimeout >= 1)) {
    throw new Error(
      `renderNginxConf: keepaliveTimeout must be a whole number of seconds, at least 1, got ${keepaliveTimeout}`,
    );
  }
  if (workerShutdownTimeout !== undefined && !MSEC_TIME.test(workerShutdownTimeout)) {
    throw new Error(
      `renderNginxConf: workerShutdownTimeout must be a time in whole ms, s, m or h (e.g. "10s"), got "${workerShutdownTimeout}"`,
    );
  }
}

/**
 * The web client's Content-Security-Policy: everything from its own origin only (the WebSocket included: CSP3
 * `'self'` covers ws:/wss: of the same host and port), no inline script or style, no plugins, no framing. The
 * built client needs nothing more: vite emits external scripts and stylesheets, and the app sets styles through
 * the CSSOM (`element.style`), which style-src does not restrict. `data:` images are for favicons and CSS icons.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers on every response of the public servers: the web client, the API (proxied) and nginx's own errors. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

/** nginx's temp dirs, under the runtime dir when one is given (each is the `<name>_path` directive). */
export const NGINX_TEMP_DIRS = ["client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"] as const;

/** The upstream's idle keep-alive connections per worker (they hold worker connections too). */
export const UPSTREAM_KEEPALIVE = 64;

/** The ordinary header buffers: a request line or a single header line above this size is refused (414 / 431). */
export const LARGE_HEADER_BUFFER = { count: 4, size: "8k", bytes: 8192 } as const;

/**
 * The buffer nginx relays an upgraded WebSocket through, one each way, and reads the gateway's response header into
 * (`proxy_buffer_size` in `/ws/`). An idle socket costs nginx about 8 KiB less with 1k than with the 4k default
 * (docs/benchmarks.md "Changes, before and after", 15); a frame larger than it crosses in pieces. The gateway's
 * largest response header on `/ws/` (the 101, or a refusal) must fit, with room to spare: a test checks it stays
 * under half.
 */
export const WS_PROXY_BUFFER = { size: "1k", bytes: 1024 } as const;

/**
 * nginx's connection budget per worker for `maxClientConnections` admitted client requests. Each admitted request
 * can hold two connections (the client's and its upstream's), the upstream keeps idle keep-alive connections, and
 * connections that limit_conn does not count yet (still sending their request header, for at most
 * clientTimeoutSeconds) or any more (idle between keep-alive requests) need room of their own. Every worker is
 * sized for the whole limit, since nothing guarantees an even spread over workers. The file limit is twice the
 * connections: a request can also hold a static file, a buffered body or a proxy temp file open.
 */
export function connectionBudget(maxClientConnections: number): { workerConnections: number; rlimitNofile: number } {
  const unaccounted = Math.max(256, Math.ceil(maxClientConnections / 4));
  const workerConnections = 2 * maxClientConnections + UPSTREAM_KEEPALIVE + unaccounted;
  return { workerConnections, rlimitNofile: 2 * workerConnections };
}

/** The largest maxClientConnections whose budget fits `openFiles` (a process's hard RLIMIT_NOFILE). */
export function maxClientConnectionsWithin(openFiles: number): number {
  let clients = Math.max(1, Math.floor((openFiles - 2 * UPSTREAM_KEEPALIVE) / 4.5));
  while (clients > 1 && connectionBudget(clients).rlimitNofile > openFiles) clients--;
  return clients;
}

/** The errors nginx answers itself, each as the protocol's JSON body (docs/protocol.md). */
export interface NginxError {
  /** The status nginx produces (494 is its internal "request header too large"). */
  status: number;
  /** The status the client sees. */
  sent: number;
  code: string;
  message: string;
  /**
   * Also raised while the request line is read, when there is no URI yet: a redirect to a named location then fails
   * ("empty URI in redirect to named location", and a 500), so these go to an internal URI instead.
   */
  requestLine?: true;
}

export const NGINX_ERRORS = {
  badRequest: { status: 400, sent: 400, code: "bad_request", message: "the request is malformed", requestLine: true },
  notFound: { status: 404, sent: 404, code: "not_found", message: "no such file" },
  methodNotAllowed: { status: 405, sent: 405, code: "bad_request", message: "method not allowed here" },
  payloadTooLarge: { status: 413, sent: 413, code: "payload_too_large", message: "bodies are at most 65536 bytes" },
  uriTooLong: {
    status: 414,
    sent: 414,
    code: "headers_too_large",
    message: "the request line is too long",
    requestLine: true,
  },
  rateLimited: { status: 429, sent: 429, code: "rate_limited", message: "too many requests from this address" },
  tooManyConnections: {
    status: 429,
    sent: 429,
    code: "too_many_connections",
    message: "too many open connections; close one or retry later",
  },
  headersTooLarge: { status: 494, sent: 431, code: "headers_too_large", message: "request headers are too large" },
  internal: { status: 500, sent: 500, code: "internal_error", message: "internal error" },
  notImplemented: { status: 501, sent: 501, code: "bad_request", message: "unsupported transfer encoding" },
  unavailable: { status: 503, sent: 503, code: "unavailable", message: "the service is unavailable; retry shortly" },
  versionNotSupported: {
    status: 505,
    sent: 505,
    code: "bad_request",
    message: "unsupported HTTP version",
    requestLine: true,
  },
} as const satisfies Record<string, NginxError>;

type ErrorName = keyof typeof NGINX_ERRORS;

/**
 * Where error_page sends an error: a named location keeps the request's URI (the access log shows the path that
 * failed); errors of the request line go to an internal URI (its path is what the access log shows for them).
 */
const errorTarget = (name: ErrorName): string =>
  "requestLine" in NGINX_ERRORS[name] ? `/_chatgrid/error/${name}` : `@${name}`;

const jsonBody = ({ code, message }: NginxError) => `'${JSON.stringify({ error: { code, message } })}'`;

/** `add_header` lines; `always` so error responses carry them too. */
const headerLines = (indent: string, extra: Record<string, string> = {}) =>
  Object.entries({ ...extra, ...SECURITY_HEADERS })
    .map(([name, value]) => `${indent}add_header ${name} "${value}" always;`)
    .join("\n");

/**
 * `error_page` lines: every status nginx produces itself goes to a location with a JSON body. 502 and 504 are
 * answered as 503 (the client retries all three alike). `tooMany` says what a 429 means where the lines stand.
 * No 408: nginx sends nothing when a client times out (it logs 408 and resets the connection), so there is no
 * body to shape (docs/operations.md).
 */
function errorPages(indent: string, tooMany: "rateLimited" | "tooManyConnections"): string {
  const pages: [string, ErrorName][] = [
    ["400", "badRequest"],
    ["404", "notFound"],
    ["405", "methodNotAllowed"],
    ["413", "payloadTooLarge"],
    ["414", "uriTooLong"],
    ["429", tooMany],
    ["494", "headersTooLarge"],
    ["500", "internal"],
    ["501", "notImplemented"],
    ["502 503 504", "unavailable"],
    ["505", "versionNotSupported"],
  ];
  return pages
    .map(([statuses, name]) => {
      const { status, sent } = NGINX_ERRORS[name];
      // `=431`: the client sees the standard status, not nginx's internal 494.
      const as = sent === status ? "=" : `=${sent}`;
      return `${indent}error_page ${statuses} ${as} ${errorTarget(name)};`;
    })
    .join("\n");
}

/** The named locations of errorPages. An empty `types` makes every body application/json, whatever the URI. */
function errorLocations(indent: string): string {
  return (Object.entries(NGINX_ERRORS) as [ErrorName, NginxError][])
    .map(([name, error]) => {
      // Retry-After only where waiting helps: a rate limit refills within a second.
      const extra: Record<string, string> = name === "rateLimited" ? { "Retry-After": "1" } : {};
      const target = errorTarget(name);
      const opener = target.startsWith("@") ? `location ${target} {` : `location = ${target} {\n${indent}  internal;`;
      return `${indent}${opener}
${indent}  types { }
${indent}  default_type application/json;
${headerLines(`${indent}  `, extra)}
${indent}  return ${error.sent} ${jsonBody(error)};
${indent}}`;
    })
    .join("\n");
}

/**
 * The ONE nginx configuration of every target, rendered from the topology: sticky sessions per client address
 * (`ip_hash`) over the gateways with passive health, WebSocket upgrade with long timeouts, the REST API with a
 * per-address rate limit and the protocol's body limit, per-address and total connection limits, short client
 * timeouts, a JSON body for every error nginx answers itself, security headers, an access log without query strings
 * or credentials, `/healthz`, stub_status, and the web client.
 */
export function renderNginxConf(topology: Topology, options: NginxRenderOptions): string {
  validateOptions(topology, options);
  const { config, gateways } = topology;
  const { realIp, resolver } = options;
  const listen = (port: number) => (options.listenHost ? `${options.listenHost}:${port}` : String(port));
  const targets = upstreamTargets(topology, options.upstreamAddresses);
  const resolve = resolver ? " resolve" : "";
  const servers = gateways
    .map((g, i) => `    server ${targets[i]} max_fails=2 fail_timeout=5s${resolve};  # ${g.name}`)
    .join("\n");
  // Each option adds its own lines only: without it the rendering is byte for byte what it was (docs/aws.md).
  const shutdown = options.workerShutdownTimeout
    ? `# A graceful stop or reload closes what is still open (WebSockets) after this.
worker_shutdown_timeout ${options.workerShutdownTimeout};
`
    : "";
  const keepalive =
    options.keepaliveTimeout !== undefined
      ? `  # Idle client keep-alive: longer than the load balancer's idle timeout, so the balancer closes first.
  keepalive_timeout ${options.keepaliveTimeout}s;
`
      : "";
  const realIpLines = realIp
    ? `  # The client address is the last X-Forwarded-For entry (the one the load balancer appended; real_ip_recursive
  # stays off) on connections from these: ip_hash, the limits, X-Real-IP and the access log use it.
${realIp.trusted.map((cidr) => `  set_real_ip_from ${cidr};`).join("\n")}
  real_ip_header ${realIp.header};

`
    : "";
  const resolverLines = resolver
    ? `  # The gateways' names are resolved at run time (\`resolve\` in the upstream), each answer kept for valid=.
  resolver ${resolver.address} valid=${resolver.valid} ipv6=off;
  resolver_timeout ${resolver.timeout ?? RESOLVER_DEFAULTS.timeout};

`
    : "";
  const zone = resolver ? `    zone chatgrid_gateways ${resolver.zoneSize ?? RESOLVER_DEFAULTS.zoneSize};\n` : "";
  const runtime = options.runtimeDir ? `pid ${options.runtimeDir}/nginx.pid;\n` : "";
  const temp = options.runtimeDir
    ? NGINX_TEMP_DIRS.map((dir) => `  ${dir}_path ${options.runtimeDir}/${dir};`).join("\n")
    : "";
  const budget = connectionBudget(config.maxClientConnections);
  const web = options.webRoot
    ? `    root ${options.webRoot};
    location / {
      try_files $uri /index.html;
    }
    location /assets/ {
      # A location with an add_header of its own inherits none of the server's: they are repeated here.
${headerLines("      ", { "Cache-Control": "public, max-age=31536000, immutable" })}
    }`
    : `    location / {
      default_type text/plain;
      return 503 "the web client is not built: run npm run build\\n";
    }`;
  const proxyHeaders = `      # With its port: the gateway's same-origin check compares the Origin with it.
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;`;

  const burst = config.apiBurst > 0 ? ` burst=${config.apiBurst} nodelay` : "";
  const apiProxy = `      proxy_pass http://chatgrid_gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${proxyHeaders}
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      # Only connection failures move to another gateway (any of them, within 5 s): a POST that reached a gateway
      # is never sent twice.
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 0;
      proxy_next_upstream_timeout 5s;`;
  const entry = `    # The protocol's 64 KiB body limit, enforced at the edge too.
    client_max_body_size 64k;

    # Every response: the web client, the API (proxied) and nginx's own errors (docs/operations.md).
${headerLines("    ")}

    # All addresses together: one request more than the budget gets JSON, before worker_connections run out.
    limit_conn chatgrid_total ${config.maxClientConnections};
    limit_conn_status 503;

    location = /healthz {
      default_type text/plain;
      return 200 "ok\\n";
    }

    location /api/ {
      limit_req zone=chatgrid_api${burst};
${apiProxy}
    }

    # Cancel has a bucket of its own: an address over its API rate can still stop its answers.
    location = /api/cancel {
      limit_req zone=chatgrid_cancel${burst};
${apiProxy}
    }

    location /ws/ {
      # An upgraded socket is one request for its whole life, so limit_conn counts open sockets. A location's own
      # limit_conn drops the server's: the total is repeated. Both refusals are 429 here (one status per location).
      limit_conn chatgrid_ws_address ${config.wsConnectionsPerAddress};
      limit_conn chatgrid_total ${config.maxClientConnections};
      limit_conn_status 429;
      proxy_pass http://chatgrid_gateways;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
${proxyHeaders}
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 0;
      proxy_next_upstream_timeout 5s;
      # Sockets live long and may be quiet; the gateway and the client keep them alive. Once upgraded, nginx times
      # the socket with these, not with client_header/body_timeout; send_timeout still cuts a client that stops
      # reading while data waits for it.
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
      # Upgraded sockets are many and mostly idle: two small buffers each (WS_PROXY_BUFFER).
      proxy_buffer_size ${WS_PROXY_BUFFER.size};
      # A location's own error_page drops the server's: the whole list, with its 429 meaning connections.
${errorPages("      ", "tooManyConnections")}
    }

${errorPages("    ", "rateLimited")}
${errorLocations("    ")}

${web}`;

  const entryServer = `  # The public entry: the API, the WebSocket and the web client (when built).
  server {
    listen ${listen(config.httpPort)};
${entry}
  }

`;
  const metricsServer = `
  server {
    listen ${listen(config.metricsPort)};
    location / {
      stub_status;
    }
  }
`;
  return `# Rendered by infra/nginx/render.ts from the chatgrid topology (${gateways.length} gateways). Do not edit.
${options.user ? `user ${options.user};\n` : ""}worker_processes ${options.workerProcesses ?? 1};
# Sized from maxClientConnections (${config.maxClientConnections}): see connectionBudget in this renderer.
worker_rlimit_nofile ${budget.rlimitNofile};
error_log ${options.errorLog} warn;
${shutdown}${runtime}
events {
  worker_connections ${budget.workerConnections};
}

http {
  # No $request, $request_uri or $args (query strings can carry tokens), no Authorization or Cookie.
  log_format chatgrid '$remote_addr [$time_iso8601] "$request_method $uri $server_protocol" $status '
                      '$body_bytes_sent $request_time "$upstream_addr" "$http_user_agent"';
  access_log ${options.accessLog === "off" ? "off" : `${options.accessLog} chatgrid`};
${temp}
  # Inline so the file needs nothing from the host's nginx install.
  types {
    text/html html;
    text/css css;
    application/javascript js mjs;
    application/json json;
    image/svg+xml svg;
    image/png png;
    image/x-icon ico;
    font/woff2 woff2;
  }
  default_type application/octet-stream;
  sendfile on;
  server_tokens off;

  # A client that stalls (slow headers, a slow body, not reading the response) is cut after this. Timed-out
  # connections are reset, so their sockets and buffers are freed at once.
  client_header_timeout ${config.clientTimeoutSeconds}s;
  client_body_timeout ${config.clientTimeoutSeconds}s;
  send_timeout ${config.clientTimeoutSeconds}s;
  reset_timedout_connection on;
${keepalive}  # nginx's defaults, stated: a request line above this is 414, a header line above it 431 (JSON, below).
  client_header_buffer_size 1k;
  large_client_header_buffers ${LARGE_HEADER_BUFFER.count} ${LARGE_HEADER_BUFFER.size};

  map $http_upgrade $connection_upgrade {
    default upgrade;
    "" close;
  }

${realIpLines}  # Per client address on the REST API; WebSocket upgrades are not counted here (the gateway limits frames).
  limit_req_zone $binary_remote_addr zone=chatgrid_api:10m rate=${config.apiRatePerSecond}r/s;
  limit_req_zone $binary_remote_addr zone=chatgrid_cancel:10m rate=${config.apiRatePerSecond}r/s;
  limit_req_status 429;
  # Open WebSockets per client address, and every client request together (one constant key).
  limit_conn_zone $binary_remote_addr zone=chatgrid_ws_address:10m;
  limit_conn_zone chatgrid zone=chatgrid_total:1m;

${resolverLines}  # ip_hash pins each client address (for IPv4 the first three octets) to one gateway, for REST and WebSocket alike.
  # A gateway that fails twice is skipped for 5 s; its clients land on another one and resume from Redis.
  upstream chatgrid_gateways {
    ip_hash;
${zone}${servers}
    keepalive ${UPSTREAM_KEEPALIVE};
  }

${options.webPortOnly ? "" : entryServer}  # The web client's own port serves the same API and WebSocket, so the page talks to its own origin.
  server {
    listen ${listen(config.webPort)};
${entry}
  }
${options.webPortOnly ? "" : metricsServer}}
`;
}
