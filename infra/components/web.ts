import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlacement, type PublishedPort, requireDnsName, serviceContainer } from "./common";
import type { HostFile } from "./host-file";
import { liveNginxConf, requireRenderedConf } from "./nginx";

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
  /** Absolute path on the Docker host for that file (followed in place, like the entry's). */
  confPath: string;
  /** The web port, published. */
  port: PublishedPort;
}

/** The web client: static files and the same API/WebSocket routes as the entry, on the web port. */
export class WebClient extends pulumi.ComponentResource {
  /** The configuration file on the host; a new topology updates it, nginx reloads it. */
  readonly conf: HostFile;
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

    const live = liveNginxConf(args.containerName, args.confPath, args.nginxConf, this, opts?.dependsOn);
    this.conf = live.file;
    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: args.image,
        network: args.network,
        entrypoint: live.entrypoint,
        volumes: live.volumes,
        healthCheck: {
          tests: ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${args.port.internal}/healthz`],
          interval: "5s",
          startPeriod: "5s",
        },
        ports: [args.port],
        labels: { "chatgrid.role": "web" },
        waitTimeout: 60,
      },
      { parent: this, dependsOn: [live.file] },
    );
    this.registerOutputs({ containerName: args.containerName });
  }
}
