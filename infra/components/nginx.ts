import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlacement, type PublishedPort, pinnedImage, requireDnsName, serviceContainer } from "./common";

/** Where the official nginx image reads its configuration. */
export const NGINX_CONF_PATH = "/etc/nginx/nginx.conf";

/** The ports a rendered nginx.conf listens on (`listen 8080;` or `listen host:8080;`). */
export function listenPorts(nginxConf: string): number[] {
  return [...nginxConf.matchAll(/^\s*listen\s+(?:[^\s;]*:)?(\d+)[^;]*;/gm)].map((m) => Number(m[1]));
}

/** Throws unless `nginxConf` is a rendering of infra/nginx/render.ts that listens on every port in `ports`. */
export function requireRenderedConf(component: string, nginxConf: string, ports: number[]): void {
  if (
    !nginxConf.startsWith("# Rendered by infra/nginx/render.ts") ||
    !/upstream chatgrid_gateways \{/.test(nginxConf)
  ) {
    throw new Error(`${component}: nginxConf must be the output of renderNginxConf (infra/nginx/render.ts)`);
  }
  const listening = new Set(listenPorts(nginxConf));
  const missing = ports.filter((port) => !listening.has(port));
  if (missing.length > 0) {
    throw new Error(
      `${component}: nginxConf does not listen on ${missing.join(", ")} (it listens on ${[...listening].join(", ")})`,
    );
  }
}

export interface NginxProxyArgs {
  containerName: string;
  /** A pinned official nginx image. */
  image: string;
  network: NetworkPlacement;
  /** The rendered configuration (renderNginxConf), uploaded to /etc/nginx/nginx.conf before the container starts. */
  nginxConf: string;
  /** The port whose /healthz the health check asks (the public HTTP port). */
  healthPort: number;
  /** The public entry (REST + WebSocket) and stub_status. */
  ports: PublishedPort[];
}

/**
 * The public entry: the official nginx image running the ONE configuration the renderer makes from the topology
 * (ip_hash over the gateways, WebSocket upgrade, rate limits, stub_status). A new topology is a new file, and a new
 * file replaces the container.
 */
export class NginxProxy extends pulumi.ComponentResource {
  readonly image: docker.RemoteImage;
  readonly container: docker.Container;

  constructor(name: string, args: NginxProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Nginx", name, {}, opts);
    requireDnsName("NginxProxy", "containerName", args.containerName);
    if (args.ports.length === 0) throw new Error("NginxProxy: publishes at least the public port");
    requireRenderedConf("NginxProxy", args.nginxConf, [args.healthPort, ...args.ports.map((p) => p.internal)]);

    this.image = pinnedImage("NginxProxy", args.containerName, args.image, this);
    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: this.image.imageId,
        network: args.network,
        uploads: [{ file: NGINX_CONF_PATH, content: args.nginxConf, permissions: "0644" }],
        healthCheck: {
          tests: ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${args.healthPort}/healthz`],
          interval: "5s",
          startPeriod: "5s",
        },
        ports: args.ports,
        labels: { "chatgrid.role": "nginx" },
        waitTimeout: 60,
      },
      { parent: this },
    );
    this.registerOutputs({ containerName: args.containerName });
  }
}
