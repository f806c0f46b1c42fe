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

/** The build context as .dockerignore allows it: the paths let in, and the names and suffixes left out below them. */
export interface ContextRules {
  include: string[];
  skipNames: string[];
  skipSuffixes: string[];
}

/**
 * Reads the repository's .dockerignore, an allow-list (`*`, then `!path` lines, then `**\/name` and `**\/*.ext`
 * exclusions). Any other form is refused: the tag must hash exactly what the build context holds.
 */
export function contextRules(dockerignore: string): ContextRules {
  const lines = dockerignore
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  if (lines[0] !== "*") throw new Error('contextTag: .dockerignore must start with "*" (an allow-list)');
  const rules: ContextRules = { include: [], skipNames: [], skipSuffixes: [] };
  for (const line of lines.slice(1)) {
    if (/^![\w./-]+$/.test(line) && !line.includes("*")) rules.include.push(line.slice(1));
    else if (/^\*\*\/[\w.-]+$/.test(line) && !line.slice(3).includes("*")) rules.skipNames.push(line.slice(3));
    else if (/^\*\*\/\*\.[\w]+$/.test(line)) rules.skipSuffixes.push(line.slice(4));
    else
      throw new Error(
        `contextTag: .dockerignore line "${line}" is not a form contextTag reads (!path, **/name, **/*.ext)`,
      );
  }
  return rules;
}

/**
 * The image tag: a digest of the build's whole input, the files the build context holds (by .dockerignore) and the
 * platform and build arguments. ECR tags are immutable (a tag always means one image, and ECR refuses to move one
 * even to the same digest), so any change to what the build sees must give a new tag, and an unchanged input the
 * same tag (docker-build then has nothing to push).
 */
export function contextTag(repoRoot: string, app: AppName, buildInputs: Record<string, unknown> = {}): string {
  const rules = contextRules(readFileSync(join(repoRoot, ".dockerignore"), "utf8"));
  const hash = createHash("sha256").update(`${JSON.stringify(buildInputs)}\0`);
  const visit = (path: string) => {
    const full = join(repoRoot, path);
    if (!existsSync(full)) return;
    if (statSync(full).isDirectory()) {
      for (const entry of readdirSync(full).sort()) {
        if (!rules.skipNames.includes(entry)) visit(join(path, entry));
      }
    } else if (
      !rules.skipSuffixes.some((suffix) => path.endsWith(suffix)) &&
      !rules.skipNames.includes(path.split("/").pop()!)
    ) {
      hash
        .update(`${relative(repoRoot, full)}\0`)
        .update(readFileSync(full))
        .update("\0");
    }
  };
  for (const path of [...rules.include].sort()) visit(path);
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
        tags: [
          pulumi.interpolate`${this.repository.repositoryUrl}:${contextTag(args.repoRoot, args.app, {
            platform: args.platform,
            buildArgs: baseImageBuildArgs(args.baseImages),
          })}`,
        ],
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
