/**
 * Every container image chatgrid pulls, pinned by digest, in ONE place. The Pulumi program pulls these, and passes
 * the base images to the Dockerfiles as build arguments (the Dockerfiles' ARG defaults must equal them; a test checks).
 *
 * The digests are the multi-platform index digests the tags pointed to when they were pinned; they were NOT resolved
 * from this repository's CI (no registry access there). Refresh them together, deliberately, with:
 *
 *   docker buildx imagetools inspect redis:7.4-alpine      # the "Digest:" line of the index
 *   docker buildx imagetools inspect apache/kafka:3.9.1
 *   docker buildx imagetools inspect nginx:1.28-alpine
 *   docker buildx imagetools inspect node:20-alpine
 *
 * then run `npx vitest run infra/images.test.ts` (it checks the Dockerfiles follow).
 */
export const images = {
  redis: "redis:7.4-alpine@sha256:ff02b58f971e7d7d156a1267e283fcbbeee91773b6aa36c49dac28ecfe28eadf",
  /** The official Apache Kafka image (KRaft, no ZooKeeper). */
  kafka: "apache/kafka:3.9.1@sha256:4ceccc577f03f51f6af8dbfda55194d0d892f4fa7913ffbded567ce3895622ed",
  /**
   * The entry proxy, and the runtime base of the web image. 1.28 (stable): the AWS entry needs `resolve` on upstream
   * servers, open-source nginx since 1.27.3 (docs/aws.md "Entry").
   */
  nginx: "nginx:1.28-alpine@sha256:a8b39bd9cf0f83869a2162827a0caf6137ddf759d50a171451b335cecc87d236",
  /** Build and runtime base of the gateway and AI node images, build base of the web image. */
  node: "node:20-alpine@sha256:fb4cd12c85ee03686f6af5362a0b0d56d50c58a04632e6c0fb8363f609372293",
} as const;

export type PulledImage = keyof typeof images;

/** The images of the stack that a stack setting (`chatgrid:images`) can replace, in a fixed order. */
export const PULLED_IMAGES = Object.keys(images) as PulledImage[];

/** One reference per pulled image: the pins above, or a stack's replacements (a registry mirror, an air-gapped site). */
export type ImagePins = Readonly<Record<PulledImage, string>>;

/** The build arguments every Dockerfile of the repository accepts for its base images, from a set of pins. */
export function baseImageBuildArgs(
  pins: Pick<ImagePins, "node" | "nginx"> = images,
): Record<"NODE_IMAGE" | "NGINX_IMAGE", string> {
  return { NODE_IMAGE: pins.node, NGINX_IMAGE: pins.nginx };
}

/** What PINNED_IMAGE means, in the words of the error messages. */
export const PINNED_IMAGE_EXPECTED = "[registry[:port]/]name:tag@sha256:<64 hex>";

// Docker's reference grammar (distribution/reference), without IPv6 registries: a registry is a host with a dot or a
// port, or `localhost`; path components are lowercase; a tag is at most 128 characters.
const HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
const REGISTRY = `(?:(?:${HOST_LABEL}(?:\\.${HOST_LABEL})+|localhost)(?::\\d{1,5})?|${HOST_LABEL}:\\d{1,5})/`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";

/**
 * A pinned reference: `[registry[:port]/]name:tag@sha256:<64 hex>` (`redis:7.4-alpine@sha256:…`,
 * `127.0.0.1:5000/redis:7-standin@sha256:…`, `mirror.example.com/library/nginx:1.28-alpine@sha256:…`).
 */
export const PINNED_IMAGE = new RegExp(
  `^(?:${REGISTRY})?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}@sha256:[0-9a-f]{64}$`,
);

/**
 * The health checks baked into the app images (HEALTHCHECK) and given to their containers by the stack, the same
 * command in both places (infra/images.test.ts compares them and runs them against the built apps). Node is in the
 * image already; the port comes from the container's environment.
 */
export const appHealthCheck = {
  gateway: [
    "node",
    "-e",
    "fetch('http://127.0.0.1:'+(process.env.METRICS_PORT||9081)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
  ],
  ai: [
    "node",
    "-e",
    "fetch('http://127.0.0.1:'+(process.env.PORT||7001)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
  ],
} as const;

/**
 * The liveness checks, for orchestrators that REPLACE a container whose health check fails (ECS: a task whose
 * essential container is unhealthy is stopped and a new one started; the same for Kubernetes' livenessProbe).
 * `appHealthCheck` above asks `/health`, which is readiness: the gateway's is 503 while no AI node is healthy, the
 * AI node's while Redis is away or it drains. Used for replacement decisions, it would replace every gateway during
 * an AI outage and every AI node during a Redis failover, and cut drains short, while the processes are fine and
 * recover by themselves (invariant 8 in docs/architecture.md). `/live` answers 200 as long as the process's event
 * loop does, whatever Redis, the AI nodes or Kafka say; readiness stays with `/health` for whatever routes traffic
 * (docs/operations.md "Liveness and readiness"). Each command is its readiness command with `/live` for `/health`,
 * nothing else (infra/images.test.ts checks that, and runs both against the apps). The same shape as
 * `appHealthCheck`: an ECS container definition takes `command: ["CMD", ...appLivenessCheck.gateway]`.
 */
export const appLivenessCheck = {
  gateway: [
    "node",
    "-e",
    "fetch('http://127.0.0.1:'+(process.env.METRICS_PORT||9081)+'/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
  ],
  ai: [
    "node",
    "-e",
    "fetch('http://127.0.0.1:'+(process.env.PORT||7001)+'/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
  ],
} as const;
