import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { GeneratedSecret } from "../generated-secret";
import { awsTags, requireTags } from "./network";

// ElastiCache for the broker (docs/aws.md "Redis"): cluster mode disabled, because the broker's Lua scripts and
// MULTI blocks touch keys of different hash slots (docs/redis.md); one primary and one replica in two zones.

export type RedisEngine = "valkey" | "redis";

export const DEFAULT_ENGINE_VERSION: Record<RedisEngine, string> = { valkey: "8.0", redis: "7.1" };
export const REDIS_PORT = 6379;
/** Primary + one replica: the least that fails over. */
export const CACHE_CLUSTERS = 2;

export interface AwsRedisArgs {
  /** The private data subnets (at least 2 zones: the replica sits in another zone than the primary). */
  subnetIds: pulumi.Input<string>[];
  /** The redis tier's group (AwsSecurityGroups.ids.redis). */
  securityGroupId: pulumi.Input<string>;
  /** Valkey (cheaper per node) or Redis OSS. */
  engine: RedisEngine;
  /** "8.0" for valkey, "7.1" for redis unless given; valkey 7.2 / 8.x and redis 7.x are accepted. */
  engineVersion?: string;
  /** An ElastiCache node type, e.g. cache.t4g.small. */
  nodeType: string;
  /** Days Secrets Manager keeps the URL secret after deletion: 0 (at once, so a re-created stack can reuse it) or 7–30. */
  secretRecoveryWindowDays: number;
  /** Days of daily snapshots, 1–35 (default 1). */
  snapshotRetentionDays?: number;
  tags?: Record<string, string>;
}

const TYPE = "chatgrid:aws:Redis";

/** The parameter group family of an engine version: valkey 7.2 → valkey7, valkey 8.x → valkey8, redis 7.x → redis7. */
export function parameterGroupFamily(engine: RedisEngine, version: string): string {
  if (engine === "valkey") {
    if (version === "7.2") return "valkey7";
    if (/^8\.\d+$/.test(version)) return "valkey8";
    throw new Error(`AwsRedis: engineVersion "${version}" is not one this component supports for valkey (7.2 or 8.x)`);
  }
  if (/^7\.\d+$/.test(version)) return "redis7";
  throw new Error(`AwsRedis: engineVersion "${version}" is not one this component supports for redis (7.x)`);
}

/**
 * The parameters the broker relies on: `volatile-lru` evicts only keys with a TTL, so the TTL-less control keys
 * (`cg:streams:watch`, `cg:ai:nodes`) are never evicted; 30 % reserved memory, AWS's advice for small node types.
 */
export const REDIS_PARAMETERS = [
  { name: "maxmemory-policy", value: "volatile-lru" },
  { name: "reserved-memory-percent", value: "30" },
] as const;

/** `rediss://:<token>@<host>:<port>`: TLS (ioredis turns rediss:// into tls), the AUTH token as the password. */
export function redisUrl(token: pulumi.Input<string>, host: pulumi.Input<string>, port: number): pulumi.Output<string> {
  return pulumi.secret(pulumi.interpolate`rediss://:${token}@${host}:${port}`);
}

function validate(name: string, args: AwsRedisArgs): { version: string; family: string; snapshots: number } {
  // The replication group id is the name plus 8 autonaming characters; ElastiCache allows 40.
  if (!/^[a-z](?!.*--)[a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$/.test(name)) {
    throw new Error(
      `AwsRedis: name "${name}" must start with a letter, use lowercase letters, digits and single hyphens, and have at most 32 characters`,
    );
  }
  if (args.engine !== "valkey" && args.engine !== "redis") {
    throw new Error(`AwsRedis: engine must be "valkey" or "redis", got "${args.engine}"`);
  }
  const version = args.engineVersion ?? DEFAULT_ENGINE_VERSION[args.engine];
  const family = parameterGroupFamily(args.engine, version);
  if (typeof args.nodeType !== "string" || !/^cache\.[a-z0-9-]+\.[a-z0-9]+$/.test(args.nodeType)) {
    throw new Error(
      `AwsRedis: nodeType must be an ElastiCache node type starting with "cache." (e.g. cache.t4g.small), got "${args.nodeType}"`,
    );
  }
  const subnets = args.subnetIds ?? [];
  if (subnets.length < 2) {
    throw new Error(
      `AwsRedis: subnetIds needs at least 2 subnets (the replica is in another zone), got ${subnets.length}`,
    );
  }
  const days = args.secretRecoveryWindowDays;
  if (!Number.isInteger(days) || (days !== 0 && (days < 7 || days > 30))) {
    throw new Error(`AwsRedis: secretRecoveryWindowDays must be 0 or a whole number from 7 to 30, got ${days}`);
  }
  const snapshots = args.snapshotRetentionDays ?? 1;
  if (!Number.isInteger(snapshots) || snapshots < 1 || snapshots > 35) {
    throw new Error(`AwsRedis: snapshotRetentionDays must be a whole number from 1 to 35, got ${snapshots}`);
  }
  requireTags("AwsRedis", args.tags);
  return { version, family, snapshots };
}

/**
 * A Multi-AZ replication group with cluster mode disabled (`<name>`), its subnet group (`<name>`) and parameter
 * group (`<name>`), TLS required and encryption at rest, an AUTH token drawn by a GeneratedSecret
 * (`<name>-auth-token`, 32 bytes as 64 hex characters: ElastiCache allows only alphanumerics and `!&#$^<>-`, so not
 * base64url), and a Secrets Manager secret (`<name>-url`) holding the whole `rediss://` URL for ECS to inject as
 * REDIS_URL. The token appears nowhere else, and only as a secret.
 */
export class AwsRedis extends pulumi.ComponentResource {
  readonly replicationGroup: aws.elasticache.ReplicationGroup;
  readonly urlSecret: aws.secretsmanager.Secret;
  /** The primary endpoint's host name (follows failovers). */
  readonly primaryEndpoint: pulumi.Output<string>;
  /** The reader endpoint's host name. */
  readonly readerEndpoint: pulumi.Output<string>;
  /** The Secrets Manager secret with the REDIS_URL (for the task definitions' `secrets` and the execution role). */
  readonly urlSecretArn: pulumi.Output<string>;
  readonly arn: pulumi.Output<string>;
  readonly port: number;
  /** The parameter group family the engine version needs. */
  readonly family: string;

  constructor(name: string, args: AwsRedisArgs, opts?: pulumi.ComponentResourceOptions) {
    const { version, family, snapshots } = validate(name, args);
    super(TYPE, name, {}, opts);
    const parent = { parent: this };
    const tags = (resourceName: string) => awsTags(TYPE, args.tags, resourceName);
    this.port = REDIS_PORT;
    this.family = family;

    const subnetGroup = new aws.elasticache.SubnetGroup(
      name,
      { description: "chatgrid Redis: the private data subnets", subnetIds: args.subnetIds, tags: tags(name) },
      parent,
    );
    const parameterGroup = new aws.elasticache.ParameterGroup(
      name,
      {
        family,
        description: "chatgrid Redis: volatile-lru (TTL-less control keys stay), 30 % reserved memory",
        parameters: REDIS_PARAMETERS.map((p) => ({ ...p })),
        tags: tags(name),
      },
      parent,
    );
    const token = new GeneratedSecret(`${name}-auth-token`, { encoding: "hex" }, parent);
    this.replicationGroup = new aws.elasticache.ReplicationGroup(
      name,
      {
        description: "chatgrid broker: sessions, streams, pub/sub",
        engine: args.engine,
        engineVersion: version,
        nodeType: args.nodeType,
        clusterMode: "disabled",
        numCacheClusters: CACHE_CLUSTERS,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
        transitEncryptionEnabled: true,
        transitEncryptionMode: "required",
        atRestEncryptionEnabled: true,
        authToken: token.value,
        // A later token change keeps the old one valid too until the next change (AWS's ROTATE), so running
        // tasks keep working while ECS rolls them onto the new URL.
        authTokenUpdateStrategy: "ROTATE",
        port: REDIS_PORT,
        subnetGroupName: subnetGroup.name,
        parameterGroupName: parameterGroup.name,
        securityGroupIds: [args.securityGroupId],
        snapshotRetentionLimit: snapshots,
        autoMinorVersionUpgrade: true,
        tags: tags(name),
      },
      parent,
    );
    this.primaryEndpoint = this.replicationGroup.primaryEndpointAddress;
    this.readerEndpoint = this.replicationGroup.readerEndpointAddress;
    this.arn = this.replicationGroup.arn;

    this.urlSecret = new aws.secretsmanager.Secret(
      `${name}-url`,
      {
        description: "chatgrid REDIS_URL (rediss://, with the AUTH token)",
        recoveryWindowInDays: args.secretRecoveryWindowDays,
        tags: tags(`${name}-url`),
      },
      parent,
    );
    const urlVersion = new aws.secretsmanager.SecretVersion(
      `${name}-url`,
      { secretId: this.urlSecret.id, secretString: redisUrl(token.value, this.primaryEndpoint, REDIS_PORT) },
      parent,
    );
    // The version's ARN, not the secret's: a task that reads it waits until the secret has its value (else ECS
    // fails the launch: no AWSCURRENT version yet, while the replication group is still being created).
    this.urlSecretArn = urlVersion.secretArn;
    this.registerOutputs({
      primaryEndpoint: this.primaryEndpoint,
      readerEndpoint: this.readerEndpoint,
      urlSecretArn: this.urlSecretArn,
      port: this.port,
    });
  }
}
