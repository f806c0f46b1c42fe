import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import * as aws from "@pulumi/aws";
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { baseImageBuildArgs, type ImagePins } from "../../images";
import type { AppName } from "../app-image";
import { requirePinned } from "../common";

export interface AwsAppImageArgs {
  app: AppName;
  /** The repository root: the build context (see .dockerignore). */
  repoRoot: string;
  baseImages: Pick<ImagePins, "node" | "nginx">;
  /** The task's platform: the image is built for exactly the architecture its tasks run on. */
  platform: "linux/arm64" | "linux/amd64";
  /** Images kept per repository (older tagged ones expire; enough for the circuit breaker's rollbacks). */
  keepImages?: number;
  tags: Record<string, string>;
}

/** What the Dockerfiles copy into the build (the rest of the repository never changes an image). */
const CONTEXT_PATHS = [
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "scripts/build-app.mjs",
  "packages",
  "apps",
];
const SKIPPED = new Set(["node_modules", "dist", ".vite"]);

/**
 * A digest of the files an app's build reads (its Dockerfile's COPY sources, without node_modules, dist and
 * Markdown, as .dockerignore leaves out): the image tag. ECR tags are immutable (a tag always means one image), so a
 * new build needs a new tag and an unchanged tree keeps its tag and is not pushed again.
 */
export function contextTag(repoRoot: string, app: AppName): string {
  const hash = createHash("sha256");
  const visit = (path: string) => {
    const full = join(repoRoot, path);
    if (!existsSync(full)) return;
    if (statSync(full).isDirectory()) {
      for (const entry of readdirSync(full).sort()) {
        if (!SKIPPED.has(entry)) visit(join(path, entry));
      }
    } else if (!path.endsWith(".md")) {
      hash
        .update(`${relative(repoRoot, full)}\0`)
        .update(readFileSync(full))
        .update("\0");
    }
  };
  for (const path of CONTEXT_PATHS) visit(path);
  return `${app}-${hash.digest("hex").slice(0, 16)}`;
}

/**
 * One app image on ECR (docs/aws.md "Images"): a repository (immutable tags, scan on push, encrypted), a lifecycle
 * policy (untagged layers expire after a day, tagged images beyond `keepImages`), and a BuildKit build of
 * `apps/<app>/Dockerfile` for the task's platform, pushed and referenced by digest. The JS stages run on the
 * builder's own platform (`--platform=$BUILDPLATFORM` in the Dockerfiles), so an arm64 image builds on an x86
 * machine without emulating Node.
 */
export class AwsAppImage extends pulumi.ComponentResource {
  readonly repository: aws.ecr.Repository;
  readonly image: dockerBuild.Image;
  /** `<repositoryUrl>@sha256:…`, what task definitions run. */
  readonly ref: pulumi.Output<string>;
  readonly platform: string;

  constructor(name: string, args: AwsAppImageArgs, opts?: pulumi.ComponentResourceOptions) {
    const dockerfile = join(args.repoRoot, "apps", args.app, "Dockerfile");
    if (!existsSync(dockerfile)) throw new Error(`AwsAppImage ${args.app}: ${dockerfile} does not exist`);
    requirePinned(`AwsAppImage ${args.app}: baseImages.node`, args.baseImages.node);
    requirePinned(`AwsAppImage ${args.app}: baseImages.nginx`, args.baseImages.nginx);
    const keep = args.keepImages ?? 20;
    if (!Number.isInteger(keep) || keep < 2) {
      throw new Error(`AwsAppImage ${args.app}: keepImages must be a whole number of at least 2, got ${keep}`);
    }
    // Validation first: a refused argument registers nothing.
    super("chatgrid:aws:AppImage", name, {}, opts);
    this.platform = args.platform;

    this.repository = new aws.ecr.Repository(
      `${name}-repository`,
      {
        imageTagMutability: "IMMUTABLE",
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [{ encryptionType: "AES256" }],
        forceDelete: false,
        tags: args.tags,
      },
      { parent: this },
    );
    new aws.ecr.LifecyclePolicy(
      `${name}-lifecycle`,
      {
        repository: this.repository.name,
        policy: JSON.stringify({
          rules: [
            {
              rulePriority: 1,
              description: "untagged layers of past builds",
              selection: { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 1 },
              action: { type: "expire" },
            },
            {
              rulePriority: 2,
              description: `keep the last ${keep} images (rollbacks need the previous ones)`,
              selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: keep },
              action: { type: "expire" },
            },
          ],
        }),
      },
      { parent: this },
    );
    const token = aws.ecr.getAuthorizationTokenOutput({ registryId: this.repository.registryId }, { parent: this });
    this.image = new dockerBuild.Image(
      `${name}-build`,
      {
        context: { location: args.repoRoot },
        dockerfile: { location: dockerfile },
        platforms: [args.platform],
        buildArgs: baseImageBuildArgs(args.baseImages),
        tags: [pulumi.interpolate`${this.repository.repositoryUrl}:${contextTag(args.repoRoot, args.app)}`],
        push: true,
        registries: [
          {
            // The registry's host (`<account>.dkr.ecr.<region>.amazonaws.com`), not the repository's path.
            address: this.repository.repositoryUrl.apply((url) => url.split("/")[0]!),
            username: token.userName,
            password: pulumi.secret(token.password),
          },
        ],
      },
      { parent: this },
    );
    this.ref = pulumi.interpolate`${this.repository.repositoryUrl}@${this.image.digest}`;
    this.registerOutputs({ ref: this.ref });
  }
}
