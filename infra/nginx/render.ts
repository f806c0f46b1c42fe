import type { Topology } from "../topology";

/** What differs between targets in nginx's own housekeeping (not in the routing, which is the topology's). */
export interface NginxRenderOptions {
  /** Where nginx writes its pid and temp files; the process target uses its state dir, containers their defaults. */
  runtimeDir?: string;
  errorLog: string;
  /** `off` or a path. */
  accessLog: string;
  /** The built web client (index.html). Without it the web port answers 503 with a hint. */
  webRoot?: string;
  /** Address the public servers listen on (`127.0.0.1` for processes, all interfaces in containers). */
  listenHost?: string;
  /** nginx `user` directive (a root master otherwise runs workers as nobody). */
  user?: string;
  workerProcesses?: number | "auto";
}

const json = (code: string, message: string) => `'{"error":{"code":"${code}","message":"${message}"}}'`;

/**
 * The ONE nginx configuration of every target, rendered from the topology: sticky sessions per client address
 * (`ip_hash`) over the gateways with passive health, WebSocket upgrade with long timeouts, the REST API with a
 * per-address rate limit and the protocol's body limit, `/healthz`, stub_status, and the web client.
 */
export function renderNginxConf(topology: Topology, options: NginxRenderOptions): string {
  const { config } = topology;
  const listen = (port: number) => (options.listenHost ? `${options.listenHost}:${port}` : String(port));
  const servers = topology.gateways
    .map((g) => `    server ${g.host}:${g.port} max_fails=2 fail_timeout=5s;  # ${g.name}`)
    .join("\n");
  const runtime = options.runtimeDir ? `pid ${options.runtimeDir}/nginx.pid;\n` : "";
  const temp = options.runtimeDir
    ? ["client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"]
        .map((d) => `  ${d} ${options.runtimeDir}/${d.replace("_path", "")};`)
        .join("\n")
    : "";
  const web = options.webRoot
    ? `    root ${options.webRoot};
    location / {
      try_files $uri /index.html;
    }
    location /assets/ {
      add_header Cache-Control "public, max-age=31536000, immutable";
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
  const entry = `    # The protocol's 64 KiB body limit, enforced at the edge too.
    client_max_body_size 64k;

    location = /healthz {
      default_type text/plain;
      return 200 "ok\\n";
    }

    location /api/ {
      limit_req zone=chatgrid_api${burst};
      proxy_pass http://chatgrid_gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${proxyHeaders}
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      # Only connection failures move to another gateway (any of them, within 5 s): a POST that reached a gateway
      # is never sent twice.
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 0;
      proxy_next_upstream_timeout 5s;
    }

    location /ws/ {
      proxy_pass http://chatgrid_gateways;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
${proxyHeaders}
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 0;
      proxy_next_upstream_timeout 5s;
      # Sockets live long and may be quiet; the gateway and the client keep them alive.
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
    }

    error_page 413 = @too_large;
    error_page 429 = @rate_limited;
    error_page 502 503 504 = @unavailable;
    location @too_large {
      default_type application/json;
      return 413 ${json("payload_too_large", "bodies are at most 65536 bytes")};
    }
    location @rate_limited {
      default_type application/json;
      add_header Retry-After 1 always;
      return 429 ${json("rate_limited", "too many requests from this address")};
    }
    location @unavailable {
      default_type application/json;
      return 503 ${json("unavailable", "no gateway is reachable; retry shortly")};
    }

${web}`;

  return `# Rendered by infra/nginx/render.ts from the chatgrid topology (${topology.gateways.length} gateways). Do not edit.
${options.user ? `user ${options.user};\n` : ""}worker_processes ${options.workerProcesses ?? 1};
error_log ${options.errorLog} warn;
${runtime}
events {
  worker_connections 8192;
}

http {
  access_log ${options.accessLog};
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

  map $http_upgrade $connection_upgrade {
    default upgrade;
    "" close;
  }

  # Per client address on the REST API; WebSocket upgrades are not counted here (the gateway limits frames).
  limit_req_zone $binary_remote_addr zone=chatgrid_api:10m rate=${config.apiRatePerSecond}r/s;
  limit_req_status 429;

  # ip_hash pins each client address (for IPv4 the first three octets) to one gateway, for REST and WebSocket alike.
  # A gateway that fails twice is skipped for 5 s; its clients land on another one and resume from Redis.
  upstream chatgrid_gateways {
    ip_hash;
${servers}
    keepalive 64;
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
