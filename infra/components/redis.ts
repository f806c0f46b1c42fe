import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { REDIS_MAXMEMORY_POLICY, requireRedisMemory } from "../runner/redis-conf";
import { type NetworkPlacement, type PublishedPort, pinnedImage, requireDnsName, serviceContainer } from "./common";

/** Where the container's password file is uploaded: a redis.conf holding only `requirepass`. */
export const REDIS_AUTH_CONF = "/usr/local/etc/redis/auth.conf";

export interface RedisServerArgs {
  /** Container name; the data volume is `<containerName>-data`. */
  containerName: string;
  /** A pinned redis image (`redis:7.4-alpine@sha256:…`). */
  image: string;
  network: NetworkPlacement;
  /** The port Redis listens on inside the network. */
  port: number;
  /** Published on the host for debugging (redis-cli), or not at all. */
  debugPort?: PublishedPort;
  /**
   * The password every client must give (`requirepass`), e.g. a GeneratedSecret's value. It reaches Redis in an
   * uploaded file and redis-cli (the health check) in REDISCLI_AUTH, both secrets in the state; never the command.
   */
  password: pulumi.Input<string>;
  /** `maxmemory` (e.g. 256mb); at the bound, keys with a TTL are evicted first (`volatile-lru`). */
  maxMemory: string;
}

/**
 * Redis with AOF persistence (fsync every second) on a named volume, so sessions, conversations and stream history
 * survive a container restart or replacement; the volume outlives the container (it goes with `pulumi destroy`).
 * It requires a password, keeps protected mode on, and is bounded in memory, dropping expiring keys first.
 */
export class RedisServer extends pulumi.ComponentResource {
  readonly image: docker.RemoteImage;
  readonly volume: docker.Volume;
  readonly container: docker.Container;
  /** The URL other containers use. */
  readonly url: string;

  constructor(name: string, args: RedisServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Redis", name, {}, opts);
    requireDnsName("RedisServer", "containerName", args.containerName);
    if (args.network.aliases.length === 0) throw new Error("RedisServer: the network placement needs an alias");
    if (args.debugPort && args.debugPort.internal !== args.port) {
      throw new Error(`RedisServer: the debug port must publish the Redis port ${args.port}`);
    }
    requireRedisMemory("RedisServer: maxMemory", args.maxMemory);
    if (typeof args.password === "string" && args.password.length < 16) {
      throw new Error("RedisServer: password must be at least 16 characters (use a GeneratedSecret)");
    }

    this.image = pinnedImage("RedisServer", args.containerName, args.image, this);
    this.volume = new docker.Volume(
      `${args.containerName}-data`,
      { name: `${args.containerName}-data`, labels: [{ label: "chatgrid.role", value: "redis" }] },
      { parent: this },
    );
    this.container = serviceContainer(
      args.containerName,
      {
        containerName: args.containerName,
        image: this.image.imageId,
        network: args.network,
        command: [
          "redis-server",
          REDIS_AUTH_CONF,
          "--port",
          String(args.port),
          "--protected-mode",
          "yes",
          "--maxmemory",
          args.maxMemory,
          "--maxmemory-policy",
          REDIS_MAXMEMORY_POLICY,
          "--appendonly",
          "yes",
          "--appendfsync",
          "everysec",
          "--dir",
          "/data",
        ],
        uploads: [
          { file: REDIS_AUTH_CONF, content: pulumi.secret(pulumi.interpolate`requirepass "${args.password}"\n`) },
        ],
        // redis-cli reads it: the health check authenticates without the password on its command line.
        env: { REDISCLI_AUTH: pulumi.secret(args.password) },
        healthCheck: { tests: ["CMD-SHELL", `redis-cli -p ${args.port} ping | grep -q PONG`], interval: "5s" },
        ports: args.debugPort ? [args.debugPort] : [],
        volumes: [{ volumeName: this.volume.name, containerPath: "/data" }],
        labels: { "chatgrid.role": "redis" },
        waitTimeout: 60,
      },
      { parent: this },
    );
    this.url = `redis://${args.network.aliases[0]}:${args.port}`;
    this.registerOutputs({ url: this.url, containerName: args.containerName });
  }
}
