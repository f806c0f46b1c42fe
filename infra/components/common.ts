import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { PINNED_IMAGE, PINNED_IMAGE_EXPECTED } from "../images";
import type { NodeSpec } from "../topology";

/** Every container restarts unless someone stopped it (a crash, an OOM kill, a daemon restart). */
export const RESTART_POLICY = "unless-stopped";

/** How Docker probes a container; the command runs inside it. */
export interface HealthCheck {
  /** `["CMD", …]` or `["CMD-SHELL", "…"]`, as in a Dockerfile HEALTHCHECK. */
  tests: string[];
  interval?: string;
  timeout?: string;
  startPeriod?: string;
  retries?: number;
}

/** A container port published on the host. */
export interface PublishedPort {
  internal: number;
  external: number;
  /** Host address it is published on (127.0.0.1 keeps it off the LAN). */
  ip: string;
}

/** Where a container sits on the stack's network. */
export interface NetworkPlacement {
  /** Name of the Docker network. */
  networkName: pulumi.Input<string>;
  /** Its fixed address (see ChatgridNetwork.address): nginx resolves upstream names once, at start. */
  ipv4Address: string;
  /** DNS names other containers use for it (the topology's host names). */
  aliases: string[];
}

export interface ServiceContainerArgs {
  containerName: string;
  image: pulumi.Input<string>;
  network: NetworkPlacement;
  env?: Record<string, pulumi.Input<string>>;
  command?: string[];
  /** Replaces the image's ENTRYPOINT (the web image's is nginx itself). */
  entrypoint?: string[];
  healthCheck: HealthCheck;
  /** Nothing is published unless listed here. */
  ports?: PublishedPort[];
  uploads?: docker.types.input.ContainerUpload[];
  volumes?: docker.types.input.ContainerVolume[];
  labels: Record<string, string>;
  /** Seconds Docker waits after SIGTERM before SIGKILL (the apps drain sockets and streams meanwhile). */
  stopTimeout?: number;
  /** Seconds `pulumi up` waits for the container to report healthy. */
  waitTimeout?: number;
}

/** `KEY=value` lines for Docker, sorted so the order never shows up as a change; secrets stay secret. */
export function envList(env: Record<string, pulumi.Input<string>>): pulumi.Output<string>[] {
  return Object.keys(env)
    .sort()
    .map((key) => pulumi.interpolate`${key}=${env[key]!}`);
}

/** Throws when `image` is not `[registry[:port]/]name:tag@sha256:<digest>`. */
export function requirePinned(component: string, image: string): void {
  if (!PINNED_IMAGE.test(image)) {
    throw new Error(`${component}: image must be pinned by digest (${PINNED_IMAGE_EXPECTED}), got "${image}"`);
  }
}

/** A pulled image, pinned by digest, as a child of the component that runs it (`<container>-image`). */
export function pinnedImage(
  component: string,
  containerName: string,
  image: string,
  parent: pulumi.Resource,
): docker.RemoteImage {
  requirePinned(component, image);
  return new docker.RemoteImage(`${containerName}-image`, { name: image, keepLocally: true }, { parent });
}

/**
 * The checks every node group makes on its part of the topology: at least one node, all of `role`, one fixed
 * address per node, unique names that are DNS labels.
 */
export function requireNodeGroup(
  component: string,
  role: NodeSpec["role"],
  roleName: string,
  nodes: NodeSpec[],
  addresses: string[],
): void {
  if (nodes.length === 0) throw new Error(`${component}: needs at least one ${roleName}`);
  const wrong = nodes.find((node) => node.role !== role);
  if (wrong)
    throw new Error(
      `${component}: ${wrong.name} is a ${wrong.role} node, not ${/^[aeiou]/i.test(roleName) ? "an" : "a"} ${roleName}`,
    );
  if (addresses.length !== nodes.length) {
    throw new Error(`${component}: ${nodes.length} nodes but ${addresses.length} addresses`);
  }
  if (new Set(nodes.map((node) => node.name)).size !== nodes.length) {
    throw new Error(`${component}: node names must be unique`);
  }
  for (const node of nodes) requireDnsName(component, "node host", node.host);
}

/** Throws when a name is not a valid Docker container / DNS name. */
export function requireDnsName(component: string, what: string, name: string): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new Error(`${component}: ${what} "${name}" is not a DNS label (lowercase letters, digits and "-")`);
  }
}

/**
 * One long-running service container with the stack's policies: restart unless stopped, a health check that
 * `pulumi up` waits for, a fixed address and aliases on the stack's network, only the listed ports published,
 * bounded json-file logs, and delete-before-replace (container names are fixed, so a replacement cannot be created
 * next to the old one).
 */
export function serviceContainer(
  name: string,
  args: ServiceContainerArgs,
  opts: pulumi.CustomResourceOptions,
): docker.Container {
  const check = args.healthCheck;
  return new docker.Container(
    name,
    {
      name: args.containerName,
      hostname: args.network.aliases[0] ?? args.containerName,
      image: args.image,
      envs: args.env ? envList(args.env) : undefined,
      command: args.command,
      entrypoints: args.entrypoint,
      restart: RESTART_POLICY,
      healthcheck: {
        tests: check.tests,
        interval: check.interval ?? "10s",
        timeout: check.timeout ?? "3s",
        startPeriod: check.startPeriod ?? "10s",
        retries: check.retries ?? 3,
      },
      wait: true,
      waitTimeout: args.waitTimeout ?? 90,
      networksAdvanced: [
        { name: args.network.networkName, aliases: args.network.aliases, ipv4Address: args.network.ipv4Address },
      ],
      ports: (args.ports ?? []).map((p) => ({ internal: p.internal, external: p.external, ip: p.ip, protocol: "tcp" })),
      uploads: args.uploads,
      volumes: args.volumes,
      labels: Object.entries(args.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([label, value]) => ({ label, value })),
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "3" },
      stopTimeout: args.stopTimeout,
    },
    { ...opts, deleteBeforeReplace: true },
  );
}
