// The chatgrid policy pack's rules (docs/policy.md lists them with their reasons). Plain @pulumi/policy objects: the
// pack (infra/policy/index.ts) serves them to the Pulumi CLI, the tests (infra/testing/policy-harness.ts) call them
// directly. Written against @pulumi/aws 7 resource classes, whose type tokens (`aws:ecs/taskDefinition:TaskDefinition`)
// the engine reports; the CLI hands resource policies the INPUTS and stack policies the OUTPUTS, with secrets
// unwrapped.
//
// Two conventions every rule follows (docs/policy.md "Conventions"):
// - A value the engine does not know yet (preview, before a dependency exists) skips the check: the rule reports
//   itself not applicable to that resource instead of failing it. `pulumi up` checks again with everything known.
// - An omitted property passes only when the provider's default is the safe value (`enableExecuteCommand`,
//   `assignPublicIp`); where the default is unsafe, or the value must match the application, it must be set.
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import type {
  Policies,
  PolicyResource,
  ReportViolation,
  ResourceValidation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import * as policy from "@pulumi/policy";
import type * as pulumi from "@pulumi/pulumi";

// ------------------------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------------------------

/**
 * What the analyzer throws when a rule reads a value that is unknown during preview. @pulumi/policy exports it at run
 * time, but its typings re-export it from a declaration file that omits it (it is marked internal), so it types as
 * `any`: typed here as the Error subclass it is.
 */
const UnknownValueError = policy.UnknownValueError as new (...args: never[]) => Error;
const isUnknownValueError = (error: unknown): error is Error =>
  error instanceof Error &&
  (error.constructor.name === "UnknownValueError" ||
    (typeof UnknownValueError === "function" && error instanceof UnknownValueError));

/** Marks a value the engine does not know yet. */
export const UNKNOWN: unique symbol = Symbol("unknown during preview");
type Maybe<T> = T | typeof UNKNOWN;

/** Reads a value; `UNKNOWN` when the analyzer's proxy says it is not known yet (preview). */
function known<T>(read: () => T): Maybe<T> {
  try {
    return read();
  } catch (error) {
    if (isUnknownValueError(error)) return UNKNOWN;
    throw error;
  }
}

/** A resource class as @pulumi/policy's typed helpers take it. */
type ResourceClass<TResource extends pulumi.Resource, TArgs> = new (
  name: string,
  args: TArgs,
  // biome-ignore lint/suspicious/noExplicitAny: @pulumi/policy's own signature (validateResourceOfType); never read.
  ...rest: any[]
) => TResource;
/** Any resource class, as `PolicyResource.isType` takes it. */
type AnyResourceClass = Parameters<PolicyResource["isType"]>[0];
type Check<P> = (props: P, args: ResourceValidationArgs, report: ReportViolation) => void;

/**
 * A validation of the resources of one class, with typed inputs. Reading a value that is unknown during preview
 * makes the policy not applicable to the resource (reported as such by the CLI), instead of failing the preview.
 */
function on<TResource extends pulumi.Resource, TArgs>(
  resourceClass: ResourceClass<TResource, TArgs>,
  check: Check<pulumi.Unwrap<NonNullable<TArgs>>>,
): ResourceValidation {
  return policy.validateResourceOfType(resourceClass, (props, args, report) => {
    try {
      check(props, args, report);
    } catch (error) {
      if (isUnknownValueError(error)) args.notApplicable(`a value is unknown during preview: ${error.message}`);
      throw error;
    }
  });
}

/** The stack's resources of any of these classes. */
const resourcesOf = (args: StackValidationArgs, ...classes: AnyResourceClass[]): PolicyResource[] =>
  args.resources.filter((r) => classes.some((c) => r.isType(c)));

const show = (value: unknown): string =>
  value === undefined ? "not set" : value === UNKNOWN ? "unknown" : JSON.stringify(value);
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/** A container definition as ECS takes it (the fields the rules read), from the task definition's JSON. */
interface ContainerJson {
  name?: string;
  image?: string;
  essential?: boolean;
  readonlyRootFilesystem?: boolean;
  stopTimeout?: number;
  healthCheck?: { command?: unknown };
  logConfiguration?: { logDriver?: string; options?: Record<string, string> };
  /** `{ name, value }` entries (not trusted to be well-formed). */
  environment?: unknown;
}

/**
 * Calls `each` for every container of a task definition (`containerDefinitions` is a JSON string); reports once
 * when it is not a JSON array of objects.
 */
function forEachContainer(
  td: { containerDefinitions: string },
  report: ReportViolation,
  each: (container: ContainerJson, name: string) => void,
): void {
  const text = td.containerDefinitions; // read outside the try: an unknown value must reach `on`
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every(isRecord)) {
    report("containerDefinitions is not a JSON array of container definitions");
    return;
  }
  parsed.forEach((container: ContainerJson, i) => {
    each(container, typeof container.name === "string" ? container.name : `#${i}`);
  });
}

/** An IAM policy document's statements (the policy is a JSON string or, from TypeScript, an object). */
interface Statement {
  Effect?: string;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Principal?: unknown;
  NotPrincipal?: unknown;
}
function statementsOf(document: unknown): Statement[] | undefined {
  let parsed: unknown = document;
  if (typeof document === "string") {
    try {
      parsed = JSON.parse(document);
    } catch {
      return undefined;
    }
  }
  if (!isRecord(parsed)) return undefined;
  const statements = asArray(parsed.Statement);
  return statements.every(isRecord) ? (statements as Statement[]) : undefined;
}
const strings = (value: unknown): string[] => asArray(value).filter((v): v is string => typeof v === "string");

/** `key=value` lines of a Kafka server.properties text (comments and blank lines skipped). */
function serverProperties(text: string): Map<string, string> {
  const properties = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    const eq = line.indexOf("=");
    if (eq > 0) properties.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return properties;
}

const DIGEST_PINNED = /@sha256:[0-9a-f]{64}$/;
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

const INTERNET_V4 = "0.0.0.0/0";
const INTERNET_V6 = "::/0";
const loadBalancerClasses = [aws.lb.LoadBalancer, aws.alb.LoadBalancer];
const listenerClasses = [aws.lb.Listener, aws.alb.Listener];

// ------------------------------------------------------------------------------------------------------------------
// ECS task definitions: every container
// ------------------------------------------------------------------------------------------------------------------

export const ecsContainerReadonlyRootFilesystem: ResourceValidationPolicy = {
  name: "ecs-container-readonly-root-filesystem",
  description:
    "Every ECS container runs with readonlyRootFilesystem: true (writable paths are task volumes, such as nginx's /tmp).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    forEachContainer(td, report, (c, name) => {
      if (c.readonlyRootFilesystem !== true) {
        report(`container "${name}": readonlyRootFilesystem is ${show(c.readonlyRootFilesystem)}, not true`);
      }
    });
  }),
};

/** The awslogs options a Fargate container needs (the driver requires the group and region, Fargate the prefix). */
const AWSLOGS_OPTIONS = ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"];

export const ecsContainerAwslogs: ResourceValidationPolicy = {
  name: "ecs-container-awslogs",
  description:
    "Every ECS container logs with the awslogs driver to a named log group (awslogs-group, awslogs-region, awslogs-stream-prefix).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    forEachContainer(td, report, (c, name) => {
      const driver = c.logConfiguration?.logDriver;
      if (driver !== "awslogs") {
        report(`container "${name}": logDriver is ${show(driver)}, not "awslogs"`);
        return;
      }
      const options = c.logConfiguration?.options ?? {};
      const missing = AWSLOGS_OPTIONS.filter((key) => typeof options[key] !== "string" || options[key] === "");
      if (missing.length > 0) report(`container "${name}": awslogs options lack ${missing.join(", ")}`);
    });
  }),
};

export const ecsEssentialContainerHealthCheck: ResourceValidationPolicy = {
  name: "ecs-essential-container-health-check",
  description:
    "Every essential ECS container declares a healthCheck in the task definition (ECS ignores the image's HEALTHCHECK).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    forEachContainer(td, report, (c, name) => {
      if (c.essential === false) return;
      const command = c.healthCheck?.command;
      if (!Array.isArray(command) || command.length === 0) {
        report(`container "${name}" is essential and has no healthCheck command`);
      }
    });
  }),
};

const STOP_TIMEOUT = { min: 15, max: 120 };

export const ecsContainerStopTimeout: ResourceValidationPolicy = {
  name: "ecs-container-stop-timeout",
  description: `Every ECS container sets stopTimeout in [${STOP_TIMEOUT.min}, ${STOP_TIMEOUT.max}] seconds: longer than the apps' graceful drain, at most Fargate's maximum.`,
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    forEachContainer(td, report, (c, name) => {
      const t = c.stopTimeout;
      if (typeof t !== "number" || t < STOP_TIMEOUT.min || t > STOP_TIMEOUT.max) {
        report(`container "${name}": stopTimeout is ${show(t)}, not in [${STOP_TIMEOUT.min}, ${STOP_TIMEOUT.max}]`);
      }
    });
  }),
};

/** Last `_`-separated words that name a secret (`OPENAI_API_KEY`, `CLUSTER_SECRET`), not `MAX_ANSWER_TOKENS`. */
const SECRET_WORDS = new Set(["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS"]);
/** Names whose value carries a password although no word says so. */
const SECRET_NAMES = new Set(["REDIS_URL"]);
/** A URL with a password in it (`rediss://:token@host:6379`). */
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^/\s@]+@/i;

/** Whether an environment variable's name says it holds a secret. */
export function isSecretLikeName(name: string): boolean {
  const upper = name.toUpperCase();
  return SECRET_NAMES.has(upper) || SECRET_WORDS.has(upper.split("_").pop() ?? "");
}

export const ecsNoSecretsInEnvironment: ResourceValidationPolicy = {
  name: "ecs-no-secrets-in-environment",
  description:
    "No ECS container has a secret in `environment` (shown in the console and API to anyone who can read task definitions): secrets go in `secrets` (valueFrom).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    forEachContainer(td, report, (c, name) => {
      for (const variable of asArray(c.environment).filter(isRecord)) {
        const key = typeof variable.name === "string" ? variable.name : "";
        if (isSecretLikeName(key)) {
          report(`container "${name}": environment variable ${key} looks like a secret; pass it in secrets`);
        } else if (typeof variable.value === "string" && URL_WITH_PASSWORD.test(variable.value)) {
          report(`container "${name}": environment variable ${key} is a URL with a password; pass it in secrets`);
        }
      }
    });
  }),
};

const CPU_ARCHITECTURES = ["X86_64", "ARM64"];

export const ecsTaskCpuArchitecture: ResourceValidationPolicy = {
  name: "ecs-task-cpu-architecture",
  description:
    "Every ECS task definition states runtimePlatform.cpuArchitecture (X86_64 or ARM64), the platform its images are built for.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.TaskDefinition, (td, _args, report) => {
    const arch = td.runtimePlatform?.cpuArchitecture;
    if (arch === undefined || !CPU_ARCHITECTURES.includes(arch)) {
      report(`runtimePlatform.cpuArchitecture is ${show(arch)}, not one of ${CPU_ARCHITECTURES.join(", ")}`);
    }
  }),
};

export const imagesPinnedByDigest: ResourceValidationPolicy = {
  name: "images-pinned-by-digest",
  description:
    "Every image a container runs is pinned by digest (ECS: `<repository>@sha256:…`; Docker: an image id or a `@sha256:` reference), as infra/images.ts pins the pulled ones.",
  enforcementLevel: "mandatory",
  validateResource: [
    on(aws.ecs.TaskDefinition, (td, _args, report) => {
      forEachContainer(td, report, (c, name) => {
        if (typeof c.image !== "string" || !DIGEST_PINNED.test(c.image)) {
          report(`container "${name}": image is ${show(c.image)}, not pinned by digest (@sha256:<64 hex>)`);
        }
      });
    }),
    on(docker.Container, (container, _args, report) => {
      const image = container.image;
      if (!IMAGE_ID.test(image) && !DIGEST_PINNED.test(image)) {
        report(`image is ${show(image)}, neither an image id (sha256:<64 hex>) nor pinned by digest`);
      }
    }),
    on(docker.RemoteImage, (image, _args, report) => {
      if (!DIGEST_PINNED.test(image.name))
        report(`image is ${show(image.name)}, not pinned by digest (@sha256:<64 hex>)`);
    }),
  ],
};

// ------------------------------------------------------------------------------------------------------------------
// ECS services
// ------------------------------------------------------------------------------------------------------------------

export const ecsServiceNoExecuteCommand: ResourceValidationPolicy = {
  name: "ecs-service-no-execute-command",
  description: "No ECS service enables ECS Exec (a shell into running tasks); the provider's default is off.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.Service, (svc, _args, report) => {
    if (svc.enableExecuteCommand === true) report("enableExecuteCommand is true");
  }),
};

export const ecsServiceDeployment: ResourceValidationPolicy = {
  name: "ecs-service-deployment",
  description:
    "Every ECS service deploys new tasks before stopping old ones (minimum healthy 100 %, maximum 200 %; the defaults) and rolls back a failing deployment (circuit breaker with rollback).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.Service, (svc, _args, report) => {
    const breaker = svc.deploymentCircuitBreaker;
    if (breaker?.enable !== true || breaker.rollback !== true) {
      report(
        `deploymentCircuitBreaker is ${show(breaker)}, not { enable: true, rollback: true }: a broken image would replace tasks forever`,
      );
    }
    const min = svc.deploymentMinimumHealthyPercent;
    if (min !== undefined && min !== 100) report(`deploymentMinimumHealthyPercent is ${min}, not 100`);
    const max = svc.deploymentMaximumPercent;
    if (max !== undefined && max !== 200) report(`deploymentMaximumPercent is ${max}, not 200`);
  }),
};

export const ecsServiceNoPublicIp: ResourceValidationPolicy = {
  name: "ecs-service-no-public-ip",
  description:
    "No ECS service gives its tasks public IPs: tasks sit in private subnets and reach the internet through NAT.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.Service, (svc, _args, report) => {
    if (svc.networkConfiguration?.assignPublicIp === true) report("networkConfiguration.assignPublicIp is true");
  }),
};

export const ecsServiceNoServiceConnect: ResourceValidationPolicy = {
  name: "ecs-service-no-service-connect",
  description:
    "No ECS service uses Service Connect: running tasks never see services added later, so new AI nodes would stay invisible to running gateways (Cloud Map DNS and the Redis registry are used instead).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecs.Service, (svc, _args, report) => {
    const sc = svc.serviceConnectConfiguration;
    if (sc !== undefined && sc.enabled !== false) report("serviceConnectConfiguration is enabled");
  }),
};

// ------------------------------------------------------------------------------------------------------------------
// ElastiCache
// ------------------------------------------------------------------------------------------------------------------

export const elasticacheEncryption: ResourceValidationPolicy = {
  name: "elasticache-encryption",
  description:
    "Every ElastiCache replication group encrypts in transit (mode required: no plaintext clients) and at rest.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.elasticache.ReplicationGroup, (rg, _args, report) => {
    if (rg.transitEncryptionEnabled !== true) {
      report(`transitEncryptionEnabled is ${show(rg.transitEncryptionEnabled)}, not true`);
    }
    if (rg.transitEncryptionMode !== "required") {
      report(`transitEncryptionMode is ${show(rg.transitEncryptionMode)}, not "required"`);
    }
    if (rg.atRestEncryptionEnabled !== true) {
      report(`atRestEncryptionEnabled is ${show(rg.atRestEncryptionEnabled)}, not true`);
    }
  }),
};

export const elasticacheAuth: ResourceValidationPolicy = {
  name: "elasticache-auth",
  description:
    "Every ElastiCache replication group requires authentication: an AUTH token (authToken or authTokenWo) or RBAC user groups.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.elasticache.ReplicationGroup, (rg, _args, report) => {
    // A generated token is unknown during preview: being set is what counts here, so its value is not read.
    const token = known(() => rg.authToken);
    const writeOnly = known(() => rg.authTokenWo);
    const present = (v: Maybe<string | undefined>) => v === UNKNOWN || (typeof v === "string" && v !== "");
    const groups = known(() => rg.userGroupIds);
    const hasGroups = groups === UNKNOWN || (Array.isArray(groups) && groups.length > 0);
    if (!present(token) && !present(writeOnly) && !hasGroups) {
      report("no authToken, authTokenWo or userGroupIds: any client that reaches port 6379 is served");
    }
  }),
};

export const elasticacheClusterModeDisabled: ResourceValidationPolicy = {
  name: "elasticache-cluster-mode-disabled",
  description:
    "Every ElastiCache replication group runs with cluster mode disabled: chatgrid's Lua scripts and MULTI blocks touch keys of several hash slots (CROSSSLOT in cluster mode).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.elasticache.ReplicationGroup, (rg, _args, report) => {
    if (rg.clusterMode !== "disabled") report(`clusterMode is ${show(rg.clusterMode)}, not "disabled"`);
    for (const key of ["numNodeGroups", "replicasPerNodeGroup"] as const) {
      if (rg[key] !== undefined) report(`${key} is set (${rg[key]}): it configures cluster mode shards`);
    }
  }),
};

export const elasticacheMultiAzFailover: ResourceValidationPolicy = {
  name: "elasticache-multi-az-failover",
  description:
    "An ElastiCache replication group with a replica (numCacheClusters ≥ 2) fails over automatically, across availability zones.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.elasticache.ReplicationGroup, (rg, args, report) => {
    const nodes = rg.numCacheClusters;
    if (nodes === undefined || nodes < 2) return args.notApplicable(`numCacheClusters is ${show(nodes)}: no replica`);
    if (rg.automaticFailoverEnabled !== true) {
      report(`numCacheClusters is ${nodes} but automaticFailoverEnabled is ${show(rg.automaticFailoverEnabled)}`);
    }
    if (rg.multiAzEnabled !== true) {
      report(`numCacheClusters is ${nodes} but multiAzEnabled is ${show(rg.multiAzEnabled)}`);
    }
  }),
};

/** Eviction policies that never evict the TTL-less control zsets (`cg:streams:watch`, `cg:ai:nodes`). */
const SAFE_MAXMEMORY_POLICIES = ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction"];

export const elasticacheMaxmemoryPolicy: ResourceValidationPolicy = {
  name: "elasticache-maxmemory-policy",
  description:
    "Every ElastiCache parameter group sets maxmemory-policy to a volatile-* policy or noeviction: allkeys-* would evict the control zsets, which have no TTL (docs/redis.md).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.elasticache.ParameterGroup, (pg, _args, report) => {
    const value = pg.parameters?.find((p) => p.name === "maxmemory-policy")?.value;
    if (value === undefined) {
      report(`maxmemory-policy is not set (want one of ${SAFE_MAXMEMORY_POLICIES.join(", ")})`);
    } else if (!SAFE_MAXMEMORY_POLICIES.includes(value)) {
      report(`maxmemory-policy is "${value}", not one of ${SAFE_MAXMEMORY_POLICIES.join(", ")}`);
    }
  }),
};

// ------------------------------------------------------------------------------------------------------------------
// MSK
// ------------------------------------------------------------------------------------------------------------------

export const mskEncryptionInTransit: ResourceValidationPolicy = {
  name: "msk-encryption-in-transit",
  description:
    "Every MSK cluster encrypts client traffic (clientBroker TLS) and broker-to-broker traffic (inCluster); both are the defaults.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.msk.Cluster, (cluster, _args, report) => {
    const transit = cluster.encryptionInfo?.encryptionInTransit;
    const clientBroker = transit?.clientBroker ?? "TLS";
    if (clientBroker !== "TLS") report(`encryptionInTransit.clientBroker is "${clientBroker}", not "TLS"`);
    if (transit?.inCluster === false) report("encryptionInTransit.inCluster is false");
  }),
};

export const mskClientAuthentication: ResourceValidationPolicy = {
  name: "msk-client-authentication",
  description: "Every MSK cluster authenticates clients with IAM (SASL/IAM on) and admits no unauthenticated client.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.msk.Cluster, (cluster, _args, report) => {
    const auth = cluster.clientAuthentication;
    if (auth?.unauthenticated === true) report("clientAuthentication.unauthenticated is true");
    if (auth?.sasl?.iam !== true) report(`clientAuthentication.sasl.iam is ${show(auth?.sasl?.iam)}, not true`);
  }),
};

export const mskConfiguration: ResourceValidationPolicy = {
  name: "msk-configuration",
  description:
    "Every MSK configuration keeps topic auto-creation off and sets min.insync.replicas below default.replication.factor (acks=all producers survive one broker down).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.msk.Configuration, (cfg, _args, report) => {
    const props = serverProperties(cfg.serverProperties);
    const autoCreate = props.get("auto.create.topics.enable");
    if (autoCreate !== undefined && autoCreate !== "false") report(`auto.create.topics.enable is "${autoCreate}"`);
    // Both explicit: MSK's defaults depend on the number of zones.
    const rf = props.get("default.replication.factor");
    const isr = props.get("min.insync.replicas");
    if (rf === undefined || isr === undefined) {
      report(`default.replication.factor is ${show(rf)} and min.insync.replicas is ${show(isr)}: set both`);
    } else if (!(Number(isr) < Number(rf))) {
      report(`min.insync.replicas ${isr} is not less than default.replication.factor ${rf}`);
    }
  }),
};

// ------------------------------------------------------------------------------------------------------------------
// Load balancers and listeners
// ------------------------------------------------------------------------------------------------------------------

/** Whether a load balancer is an application load balancer (the default type). */
const isApplication = (lb: { loadBalancerType?: string }) => (lb.loadBalancerType ?? "application") === "application";

const albChecks = (check: Check<pulumi.Unwrap<aws.lb.LoadBalancerArgs>>): ResourceValidation[] => [
  on(aws.lb.LoadBalancer, (lb, args, report) => {
    if (!isApplication(lb)) return args.notApplicable("not an application load balancer");
    check(lb, args, report);
  }),
  on(aws.alb.LoadBalancer, (lb, args, report) => {
    if (!isApplication(lb)) return args.notApplicable("not an application load balancer");
    check(lb, args, report);
  }),
];

export const albDropInvalidHeaderFields: ResourceValidationPolicy = {
  name: "alb-drop-invalid-header-fields",
  description:
    "Every application load balancer drops invalid HTTP header fields (request smuggling through header names nginx and Node parse differently).",
  enforcementLevel: "mandatory",
  validateResource: albChecks((lb, _args, report) => {
    if (lb.dropInvalidHeaderFields !== true) {
      report(`dropInvalidHeaderFields is ${show(lb.dropInvalidHeaderFields)}, not true`);
    }
  }),
};

const MIN_IDLE_TIMEOUT = 3600;

export const albIdleTimeout: ResourceValidationPolicy = {
  name: "alb-idle-timeout",
  description: `Every application load balancer keeps idle connections at least ${MIN_IDLE_TIMEOUT} s (nginx's WebSocket read timeout), so quiet WebSockets are not cut at the 60 s default.`,
  enforcementLevel: "mandatory",
  validateResource: albChecks((lb, _args, report) => {
    if (typeof lb.idleTimeout !== "number" || lb.idleTimeout < MIN_IDLE_TIMEOUT) {
      report(`idleTimeout is ${show(lb.idleTimeout)}, less than ${MIN_IDLE_TIMEOUT}`);
    }
  }),
};

export const lbSingleInternetFacing: StackValidationPolicy = {
  name: "lb-single-internet-facing",
  description:
    "At most one load balancer faces the internet (internal false, the default): the entry. Every other one is internal.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const lbs = resourcesOf(args, ...loadBalancerClasses);
    if (lbs.length === 0) return args.notApplicable("no load balancer");
    const facing = lbs.filter((lb) => known(() => lb.props.internal) !== true);
    if (facing.length <= 1) return;
    const names = facing.map((lb) => lb.name).join(", ");
    for (const lb of facing) {
      report(`${facing.length} load balancers face the internet (${names}); only the entry may`, lb.urn);
    }
  },
};

export const albHttpRedirectsToHttps: StackValidationPolicy = {
  name: "alb-http-redirects-to-https",
  description:
    "On a load balancer with an HTTPS listener, every HTTP listener only redirects to HTTPS (no plaintext path to the app).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const listeners = resourcesOf(args, ...listenerClasses);
    if (listeners.length === 0) return args.notApplicable("no listener");
    // By load balancer; during preview a new load balancer's ARN is unknown, and its listeners form one group.
    const groups = new Map<Maybe<string>, PolicyResource[]>();
    for (const l of listeners) {
      const key = known(() => String(l.props.loadBalancerArn));
      groups.set(key, [...(groups.get(key) ?? []), l]);
    }
    const protocolOf = (l: PolicyResource) => known(() => String(l.props.protocol ?? "HTTP").toUpperCase());
    for (const group of groups.values()) {
      if (!group.some((l) => protocolOf(l) === "HTTPS")) continue;
      for (const l of group.filter((l) => protocolOf(l) === "HTTP")) {
        const actions = known(() =>
          asArray(l.props.defaultActions).map((a) =>
            isRecord(a) ? [a.type, known(() => (isRecord(a.redirect) ? a.redirect.protocol : undefined))] : [],
          ),
        );
        if (actions === UNKNOWN || actions.some(([, protocol]) => protocol === UNKNOWN)) continue;
        const redirects =
          actions.length > 0 && actions.every(([type, protocol]) => type === "redirect" && protocol === "HTTPS");
        if (!redirects)
          report(`HTTP listener on port ${show(known(() => l.props.port))} does not redirect to HTTPS`, l.urn);
      }
    }
  },
};

// ------------------------------------------------------------------------------------------------------------------
// Security groups
// ------------------------------------------------------------------------------------------------------------------

/** Ports the internet may reach (on the entry's security group). */
const INTERNET_PORTS = [80, 443];

interface IngressProps {
  cidrIpv4?: string;
  cidrIpv6?: string;
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
}
const worldSource = (rule: IngressProps): string | undefined =>
  rule.cidrIpv4 === INTERNET_V4 ? INTERNET_V4 : rule.cidrIpv6 === INTERNET_V6 ? INTERNET_V6 : undefined;

export const sgWorldIngressPorts: ResourceValidationPolicy = {
  name: "sg-world-ingress-ports",
  description: `Ingress from anywhere (0.0.0.0/0, ::/0) is TCP to port ${INTERNET_PORTS.join(" or ")} only.`,
  enforcementLevel: "mandatory",
  validateResource: on(aws.vpc.SecurityGroupIngressRule, (rule, _args, report) => {
    const source = worldSource(rule);
    if (source === undefined) return;
    const protocol = rule.ipProtocol.toLowerCase();
    const { fromPort: from, toPort: to } = rule;
    const single = from !== undefined && from === to;
    if (protocol !== "tcp" || !single || !INTERNET_PORTS.includes(from)) {
      const ports = from === undefined ? "all ports" : single ? `port ${from}` : `ports ${from}-${to}`;
      const what = protocol === "-1" ? "all protocols" : `${protocol} ${ports}`;
      report(`ingress from ${source} to ${what}: the internet may reach only tcp 80 and 443`);
    }
  }),
};

export const sgWorldIngressEntryOnly: StackValidationPolicy = {
  name: "sg-world-ingress-entry-only",
  description:
    "Ingress from anywhere (0.0.0.0/0, ::/0) goes only to a security group of an internet-facing load balancer (the group is recognised by being in that load balancer's securityGroups, not by a name or tag).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const rules = resourcesOf(args, aws.vpc.SecurityGroupIngressRule);
    if (rules.length === 0) return args.notApplicable("no security group ingress rule");
    const entryGroups = new Set<string>();
    for (const lb of resourcesOf(args, ...loadBalancerClasses)) {
      const facing = known(() => lb.props.internal !== true);
      const groups = known(() => strings(lb.props.securityGroups));
      if (facing === UNKNOWN || groups === UNKNOWN) {
        return args.notApplicable(`the security groups of load balancer ${lb.name} are unknown during preview`);
      }
      if (facing) for (const g of groups) entryGroups.add(g);
    }
    for (const rule of rules) {
      const props = known(() => ({
        cidrIpv4: rule.props.cidrIpv4,
        cidrIpv6: rule.props.cidrIpv6,
        ipProtocol: rule.props.ipProtocol,
        groupId: rule.props.securityGroupId,
      }));
      if (props === UNKNOWN) continue;
      const source = worldSource(props);
      if (source !== undefined && !entryGroups.has(props.groupId)) {
        report(
          `ingress from ${source} to security group ${show(props.groupId)}, which no internet-facing load balancer uses`,
          rule.urn,
        );
      }
    }
  },
};

export const sgRulesAsOwnResources: ResourceValidationPolicy = {
  name: "sg-rules-as-own-resources",
  description:
    "Security group rules are aws.vpc.SecurityGroupIngressRule/EgressRule resources: no inline ingress/egress on aws.ec2.SecurityGroup and no aws.ec2.SecurityGroupRule (they fight each other over the same rules, and the ingress rules above check only the vpc resources).",
  enforcementLevel: "mandatory",
  validateResource: [
    on(aws.ec2.SecurityGroup, (sg, _args, report) => {
      for (const key of ["ingress", "egress"] as const) {
        if ((sg[key] ?? []).length > 0) report(`inline ${key} rules (${sg[key]?.length}); use aws.vpc rule resources`);
      }
    }),
    on(aws.ec2.SecurityGroupRule, (_rule, _args, report) => {
      report("aws.ec2.SecurityGroupRule; use aws.vpc.SecurityGroupIngressRule or SecurityGroupEgressRule");
    }),
  ],
};

const requireDescription = (rule: { description?: string }, report: ReportViolation) => {
  if (typeof rule.description !== "string" || rule.description.trim() === "") report("no description");
};

export const sgRuleDescription: ResourceValidationPolicy = {
  name: "sg-rule-description",
  description: "Every security group rule says why it exists (description).",
  enforcementLevel: "mandatory",
  validateResource: [
    on(aws.vpc.SecurityGroupIngressRule, (rule, _args, report) => requireDescription(rule, report)),
    on(aws.vpc.SecurityGroupEgressRule, (rule, _args, report) => requireDescription(rule, report)),
  ],
};

// ------------------------------------------------------------------------------------------------------------------
// IAM
// ------------------------------------------------------------------------------------------------------------------

/** Runs `each` on every permission policy document: RolePolicy and Policy documents, and a Role's inline ones. */
function onPermissionDocuments(
  each: (statements: Statement[], report: ReportViolation, args: ResourceValidationArgs) => void,
): ResourceValidation[] {
  const parse = (document: unknown, label: string, report: ReportViolation, args: ResourceValidationArgs) => {
    const statements = statementsOf(document);
    if (statements === undefined) report(`${label} is not a JSON policy document with a Statement list`);
    else each(statements, label === "policy" ? report : (m) => report(`${label}: ${m}`), args);
  };
  return [
    on(aws.iam.RolePolicy, (rp, args, report) => parse(rp.policy, "policy", report, args)),
    on(aws.iam.Policy, (p, args, report) => parse(p.policy, "policy", report, args)),
    on(aws.iam.Role, (role, args, report) => {
      const inline = role.inlinePolicies ?? [];
      if (inline.length === 0) return args.notApplicable("no inline policies");
      inline.forEach((inline, i) => {
        parse(inline.policy, `inlinePolicies[${i}]`, report, args);
      });
    }),
  ];
}

const isAllow = (s: Statement) => s.Effect === "Allow";
const WILDCARD_ACTION = /^(\*|[a-z0-9-]+:\*)$/i;

export const iamNoWildcardActions: ResourceValidationPolicy = {
  name: "iam-no-wildcard-actions",
  description:
    'No IAM policy allows every action ("*") or every action of a service ("ecs:*"), or allows by NotAction.',
  enforcementLevel: "mandatory",
  validateResource: onPermissionDocuments((statements, report) => {
    statements.forEach((s, i) => {
      if (!isAllow(s)) return;
      if (s.NotAction !== undefined) report(`statement ${i} allows by NotAction`);
      for (const action of strings(s.Action).filter((a) => WILDCARD_ACTION.test(a))) {
        report(`statement ${i} allows action "${action}"`);
      }
    });
  }),
};

/** The actions that have no resource type, so they can only be granted on "*". */
export const WILDCARD_RESOURCE_ACTIONS = ["ecr:GetAuthorizationToken"];

export const iamWildcardResourceAllowlist: ResourceValidationPolicy = {
  name: "iam-wildcard-resource-allowlist",
  description: `An IAM policy grants on Resource "*" only the actions that have no resource type (${WILDCARD_RESOURCE_ACTIONS.join(", ")}), and never allows by NotResource.`,
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowedActions: { type: "array", items: { type: "string" }, default: WILDCARD_RESOURCE_ACTIONS },
    },
  },
  validateResource: onPermissionDocuments((statements, report, args) => {
    const allowed = args.getConfig<{ allowedActions?: string[] }>().allowedActions ?? WILDCARD_RESOURCE_ACTIONS;
    statements.forEach((s, i) => {
      if (!isAllow(s)) return;
      if (s.NotResource !== undefined) report(`statement ${i} allows by NotResource`);
      if (!strings(s.Resource).includes("*")) return;
      const others = strings(s.Action).filter((a) => !allowed.includes(a));
      if (others.length > 0 || s.NotAction !== undefined) {
        report(`statement ${i} grants ${others.join(", ") || "NotAction"} on Resource "*"`);
      }
    });
  }),
};

/** The service principals the stack's roles may trust: ECS tasks (task roles and execution roles). */
export const TRUSTED_SERVICES = ["ecs-tasks.amazonaws.com"];

export const iamRoleTrustEcsTasks: ResourceValidationPolicy = {
  name: "iam-role-trust-ecs-tasks",
  description: `Every IAM role of the stack is an ECS task or execution role: its trust policy lets only ${TRUSTED_SERVICES.join(", ")} assume it (sts:AssumeRole). Checked on every role, as the stack has no other kind.`,
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowedServicePrincipals: { type: "array", items: { type: "string" }, default: TRUSTED_SERVICES },
    },
  },
  validateResource: on(aws.iam.Role, (role, args, report) => {
    const allowed = args.getConfig<{ allowedServicePrincipals?: string[] }>().allowedServicePrincipals;
    const services = allowed ?? TRUSTED_SERVICES;
    const statements = statementsOf(role.assumeRolePolicy);
    if (statements === undefined) {
      report("assumeRolePolicy is not a JSON policy document with a Statement list");
      return;
    }
    statements.forEach((s, i) => {
      if (!isAllow(s)) return;
      const principal = s.Principal;
      const trusted =
        isRecord(principal) &&
        Object.keys(principal).length === 1 &&
        strings(principal.Service).length === asArray(principal.Service).length &&
        strings(principal.Service).length > 0 &&
        strings(principal.Service).every((svc) => services.includes(svc));
      if (!trusted || s.NotPrincipal !== undefined) {
        report(`trust statement ${i} admits principal ${JSON.stringify(principal ?? s.NotPrincipal)}`);
      }
      const actions = strings(s.Action);
      if (actions.length === 0 || actions.some((a) => a !== "sts:AssumeRole")) {
        report(`trust statement ${i} allows ${JSON.stringify(s.Action)}, not only sts:AssumeRole`);
      }
    });
  }),
};

const AWS_MANAGED_POLICY = /^arn:aws[a-z-]*:iam::aws:policy\//;

export const iamRolePoliciesExplicit: ResourceValidationPolicy = {
  name: "iam-role-policies-explicit",
  description:
    'Roles get permissions only from aws.iam.RolePolicy documents the IAM rules above can read: no inlinePolicies or managedPolicyArns on aws.iam.Role (deprecated; they fight RolePolicy resources), no AWS-managed policy attachments (they grant on Resource "*").',
  enforcementLevel: "mandatory",
  validateResource: [
    on(aws.iam.Role, (role, _args, report) => {
      if ((role.inlinePolicies ?? []).length > 0) report("inlinePolicies is set; use aws.iam.RolePolicy");
      if ((role.managedPolicyArns ?? []).length > 0) {
        report(`managedPolicyArns is set (${role.managedPolicyArns?.join(", ")}); use aws.iam.RolePolicy`);
      }
    }),
    on(aws.iam.RolePolicyAttachment, (attachment, _args, report) => {
      if (AWS_MANAGED_POLICY.test(attachment.policyArn)) {
        report(`attaches the AWS-managed policy ${attachment.policyArn}; write an aws.iam.RolePolicy`);
      }
    }),
  ],
};

// ------------------------------------------------------------------------------------------------------------------
// ECR
// ------------------------------------------------------------------------------------------------------------------

export const ecrScanOnPush: ResourceValidationPolicy = {
  name: "ecr-scan-on-push",
  description: "Every ECR repository scans images on push.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecr.Repository, (repo, _args, report) => {
    const scan = repo.imageScanningConfiguration?.scanOnPush;
    if (scan !== true) report(`imageScanningConfiguration.scanOnPush is ${show(scan)}, not true`);
  }),
};

export const ecrImmutableTags: ResourceValidationPolicy = {
  name: "ecr-immutable-tags",
  description: "Every ECR repository has immutable tags: a pushed tag always names the same image.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ecr.Repository, (repo, _args, report) => {
    if (repo.imageTagMutability !== "IMMUTABLE") {
      report(`imageTagMutability is ${show(repo.imageTagMutability)}, not "IMMUTABLE"`);
    }
  }),
};

export const ecrLifecyclePolicyPerRepository: StackValidationPolicy = {
  name: "ecr-lifecycle-policy-per-repository",
  description:
    "Every ECR repository has an aws.ecr.LifecyclePolicy (untagged and old images expire instead of piling up).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const repos = resourcesOf(args, aws.ecr.Repository);
    if (repos.length === 0) return args.notApplicable("no ECR repository");
    const covered = new Set<string>();
    for (const lp of resourcesOf(args, aws.ecr.LifecyclePolicy)) {
      const repository = known(() => lp.props.repository);
      if (repository === UNKNOWN)
        return args.notApplicable("a lifecycle policy's repository is unknown during preview");
      if (typeof repository === "string") covered.add(repository);
    }
    for (const repo of repos) {
      const name = known(() => repo.props.name);
      if (name === UNKNOWN) continue;
      if (!covered.has(name)) report(`repository ${show(name)} has no lifecycle policy`, repo.urn);
    }
  },
};

// ------------------------------------------------------------------------------------------------------------------
// CloudWatch Logs, VPC, Secrets Manager
// ------------------------------------------------------------------------------------------------------------------

export const logGroupRetention: ResourceValidationPolicy = {
  name: "log-group-retention",
  description: "Every CloudWatch log group expires its logs (retentionInDays set, not 0 = forever).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.cloudwatch.LogGroup, (lg, _args, report) => {
    if (typeof lg.retentionInDays !== "number" || lg.retentionInDays <= 0) {
      report(`retentionInDays is ${show(lg.retentionInDays)}: logs would be kept forever`);
    }
  }),
};

export const vpcDnsSupportAndHostnames: ResourceValidationPolicy = {
  name: "vpc-dns-support-and-hostnames",
  description:
    "Every VPC resolves DNS and gives hostnames (enableDnsSupport, the default, and enableDnsHostnames): Cloud Map names and interface endpoints need both.",
  enforcementLevel: "mandatory",
  validateResource: on(aws.ec2.Vpc, (vpc, _args, report) => {
    if (vpc.enableDnsSupport === false) report("enableDnsSupport is false");
    if (vpc.enableDnsHostnames !== true) report(`enableDnsHostnames is ${show(vpc.enableDnsHostnames)}, not true`);
  }),
};

export const secretsManagerRecoveryWindow: ResourceValidationPolicy = {
  name: "secretsmanager-recovery-window",
  description:
    "Every Secrets Manager secret states its recovery window: 0 (deleted at once, throwaway stacks) or 7–30 days (the 30-day default blocks re-creating a secret of the same name).",
  enforcementLevel: "mandatory",
  validateResource: on(aws.secretsmanager.Secret, (secret, _args, report) => {
    const days = secret.recoveryWindowInDays;
    if (days === undefined) report("recoveryWindowInDays is not set");
    else if (days !== 0 && (days < 7 || days > 30)) report(`recoveryWindowInDays is ${days}, neither 0 nor 7–30`);
  }),
};

// ------------------------------------------------------------------------------------------------------------------

/** Every rule, in the order above: what the pack serves and the harness runs. */
export const policies: Policies = [
  ecsContainerReadonlyRootFilesystem,
  ecsContainerAwslogs,
  ecsEssentialContainerHealthCheck,
  ecsContainerStopTimeout,
  ecsNoSecretsInEnvironment,
  ecsTaskCpuArchitecture,
  imagesPinnedByDigest,
  ecsServiceNoExecuteCommand,
  ecsServiceDeployment,
  ecsServiceNoPublicIp,
  ecsServiceNoServiceConnect,
  elasticacheEncryption,
  elasticacheAuth,
  elasticacheClusterModeDisabled,
  elasticacheMultiAzFailover,
  elasticacheMaxmemoryPolicy,
  mskEncryptionInTransit,
  mskClientAuthentication,
  mskConfiguration,
  albDropInvalidHeaderFields,
  albIdleTimeout,
  lbSingleInternetFacing,
  albHttpRedirectsToHttps,
  sgWorldIngressPorts,
  sgWorldIngressEntryOnly,
  sgRulesAsOwnResources,
  sgRuleDescription,
  iamNoWildcardActions,
  iamWildcardResourceAllowlist,
  iamRoleTrustEcsTasks,
  iamRolePoliciesExplicit,
  ecrScanOnPush,
  ecrImmutableTags,
  ecrLifecyclePolicyPerRepository,
  logGroupRetention,
  vpcDnsSupportAndHostnames,
  secretsManagerRecoveryWindow,
];
