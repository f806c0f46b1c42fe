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
  const { config } = topology;
  const listen = (port: number) => (options.listenHost ? `${options.listenHost}:${port}` : String(port));
  const targets = upstreamTargets(topology, options.upstreamAddresses);
  const servers = topology.gateways
    .map((g, i) => `    server ${targets[i]} max_fails=2 fail_timeout=5s;  # ${g.name}`)
    .join("\n");
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
      # A location's own error_page drops the server's: the whole list, with its 429 meaning connections.
${errorPages("      ", "tooManyConnections")}
    }

${errorPages("    ", "rateLimited")}
${errorLocations("    ")}

${web}`;

  return `# Rendered by infra/nginx/render.ts from the chatgrid topology (${topology.gateways.length} gateways). Do not edit.
${options.user ? `user ${options.user};\n` : ""}worker_processes ${options.workerProcesses ?? 1};
# Sized from maxClientConnections (${config.maxClientConnections}): see connectionBudget in this renderer.
worker_rlimit_nofile ${budget.rlimitNofile};
error_log ${options.errorLog} warn;
${runtime}
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
  # nginx's defaults, stated: a request line above this is 414, a header line above it 431 (JSON, below).
  client_header_buffer_size 1k;
  large_client_header_buffers ${LARGE_HEADER_BUFFER.count} ${LARGE_HEADER_BUFFER.size};

  map $http_upgrade $connection_upgrade {
    default upgrade;
    "" close;
  }

  # Per client address on the REST API; WebSocket upgrades are not counted here (the gateway limits frames).
  limit_req_zone $binary_remote_addr zone=chatgrid_api:10m rate=${config.apiRatePerSecond}r/s;
  limit_req_zone $binary_remote_addr zone=chatgrid_cancel:10m rate=${config.apiRatePerSecond}r/s;
  limit_req_status 429;
  # Open WebSockets per client address, and every client request together (one constant key).
  limit_conn_zone $binary_remote_addr zone=chatgrid_ws_address:10m;
  limit_conn_zone chatgrid zone=chatgrid_total:1m;

  # ip_hash pins each client address (for IPv4 the first three octets) to one gateway, for REST and WebSocket alike.
  # A gateway that fails twice is skipped for 5 s; its clients land on another one and resume from Redis.
  upstream chatgrid_gateways {
    ip_hash;
${servers}
    keepalive ${UPSTREAM_KEEPALIVE};
  }

  # The public entry: the API, the WebSocket and the web client (when built).
  server {
    listen ${listen(config.httpPort)};
${entry}
  }

  # The web client's own port serves the same API and WebSocket, so the page talks to its own origin.
  server {
    listen ${listen(config.webPort)};
${entry}
  }

  server {
    listen ${listen(config.metricsPort)};
    location / {
      stub_status;
    }
  }
}
`;
}
