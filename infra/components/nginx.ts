import { basename, dirname } from "node:path";
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type NetworkPlacement, type PublishedPort, pinnedImage, requireDnsName, serviceContainer } from "./common";
import { HostFile } from "./host-file";

/** Where the nginx containers see the directory of their configuration files (bind-mounted from the host). */
export const LIVE_CONF_DIR = "/etc/chatgrid";

/**
 * nginx in the foreground, reloaded in place when its configuration file changes (checked every second, tested
 * with `nginx -t` first): a new topology is a new file, never a new container, so the entry keeps answering while
 * the stack scales (docs/docker.md "Scaling"). SIGTERM stops nginx gracefully.
 */
export function reloadingNginx(confFile: string): string[] {
  const script = [
    `conf=${confFile}`,
    `nginx -c "$conf" -g "daemon off;" &`,
    "pid=$!",
    `trap 'kill -QUIT "$pid"; wait "$pid"; exit 0' TERM INT`,
    `seen=$(cksum < "$conf")`,
    `while kill -0 "$pid" 2>/dev/null; do`,
    "  sleep 1 & wait $!",
    `  now=$(cksum < "$conf")`,
    `  if [ "$now" != "$seen" ]; then seen=$now; if nginx -t -q -c "$conf"; then kill -HUP "$pid"; fi; fi`,
    "done",
    `wait "$pid"`,
  ].join("\n");
  return ["sh", "-c", script];
}

/** The host file, bind mount and entrypoint of an nginx container that follows its configuration in place. */
export function liveNginxConf(
  containerName: string,
  confPath: string,
  nginxConf: string,
  parent: pulumi.Resource,
  dependsOn: pulumi.ResourceOptions["dependsOn"],
): { file: HostFile; volumes: docker.types.input.ContainerVolume[]; entrypoint: string[] } {
  // The component's own dependsOn (the gateways), stated on the file too: a new upstream is written only once the
  // gateways it names are up and healthy, and a removed gateway is deleted only after the file stops naming it.
  const file = new HostFile(`${containerName}-conf`, { path: confPath, content: nginxConf }, { parent, dependsOn });
  return {
    file,
    volumes: [{ hostPath: dirname(confPath), containerPath: LIVE_CONF_DIR, readOnly: true }],
    // The entrypoint, not the command: the web image's ENTRYPOINT is nginx itself.
    entrypoint: reloadingNginx(`${LIVE_CONF_DIR}/${basename(confPath)}`),
  };
}

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
  /** The rendered configuration (renderNginxConf), written to `confPath` on the host and followed in place. */
  nginxConf: string;
  /** Absolute path on the Docker host for that file (its directory is bind-mounted read-only). */
  confPath: string;
  /** The port whose /healthz the health check asks (the public HTTP port). */
  healthPort: number;
  /** The public entry (REST + WebSocket) and stub_status. */
  ports: PublishedPort[];
}

/**
 * The public entry: the official nginx image running the ONE configuration the renderer makes from the topology
 * (ip_hash over the gateways, WebSocket upgrade, rate limits, stub_status). A new topology is a new file on the
 * host, which nginx reloads in place: the container is not replaced, and the entry keeps answering.
 */
export class NginxProxy extends pulumi.ComponentResource {
  readonly image: docker.RemoteImage;
  /** The configuration file on the host; a new topology updates it, nginx reloads it. */
  readonly conf: HostFile;
  readonly container: docker.Container;

  constructor(name: string, args: NginxProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Nginx", name, {}, opts);
    requireDnsName("NginxProxy", "containerName", args.containerName);
    if (args.ports.length === 0) throw new Error("NginxProxy: publishes at least the public port");
    requireRenderedConf("NginxProxy", args.nginxConf, [args.healthPort, ...args.ports.map((p) => p.internal)]);

    this.image = pinnedImage("NginxProxy", args.containerName, args.image, this);
    const live = liveNginxConf(args.containerName, args.confPath, args.nginxConf, this, opts?.dependsOn);
    this.conf = live.file;
    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: this.image.imageId,
        network: args.network,
        entrypoint: live.entrypoint,
        volumes: live.volumes,
        healthCheck: {
          tests: ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${args.healthPort}/healthz`],
          interval: "5s",
          startPeriod: "5s",
        },
        ports: args.ports,
        labels: { "chatgrid.role": "nginx" },
        waitTimeout: 60,
      },
      { parent: this, dependsOn: [live.file] },
    );
    this.registerOutputs({ containerName: args.containerName });
  }
}
