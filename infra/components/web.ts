import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlacement, type PublishedPort, requireDnsName, serviceContainer } from "./common";
import { NGINX_CONF_PATH, requireRenderedConf } from "./nginx";

/** Where the web image keeps the built client (apps/web/Dockerfile copies apps/web/dist there). */
export const WEB_ROOT = "/usr/share/nginx/html";

export interface WebClientArgs {
  containerName: string;
  /** The web image (built from apps/web/Dockerfile: nginx, non-root, with the static build). */
  image: pulumi.Input<string>;
  network: NetworkPlacement;
  /**
   * The rendered configuration with `webRoot` = WEB_ROOT and a runtime dir the unprivileged nginx user can write
   * (`/tmp`): it serves the files and proxies /api/ and /ws/ to the gateways, so the page talks to its own origin.
   */
  nginxConf: string;
  /** The web port, published. */
  port: PublishedPort;
}

/** The web client: static files and the same API/WebSocket routes as the entry, on the web port. */
export class WebClient extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: WebClientArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Web", name, {}, opts);
    requireDnsName("WebClient", "containerName", args.containerName);
    requireRenderedConf("WebClient", args.nginxConf, [args.port.internal]);
    if (!args.nginxConf.includes(`root ${WEB_ROOT};`)) {
      throw new Error(`WebClient: nginxConf must serve the built client from ${WEB_ROOT} (render it with webRoot)`);
    }
    if (!/^pid \/tmp\//m.test(args.nginxConf)) {
      throw new Error("WebClient: nginxConf must keep its pid and temp files under /tmp (render it with runtimeDir)");
    }

    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: args.image,
        network: args.network,
        uploads: [{ file: NGINX_CONF_PATH, content: args.nginxConf, permissions: "0644" }],
        healthCheck: {
          tests: ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${args.port.internal}/healthz`],
          interval: "5s",
          startPeriod: "5s",
        },
        ports: [args.port],
        labels: { "chatgrid.role": "web" },
        waitTimeout: 60,
      },
      { parent: this },
    );
    this.registerOutputs({ containerName: args.containerName });
  }
}
