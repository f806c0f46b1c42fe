import { existsSync } from "node:fs";
import { join } from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseImageBuildArgs, type ImagePins } from "../images";
import { requirePinned } from "./common";

/** The apps that have an image of their own. */
export type AppName = "gateway" | "ai" | "web";

export interface AppImageArgs {
  app: AppName;
  /** The repository root: the build context of every image (see .dockerignore). */
  repoRoot: string;
  /** Local tag, e.g. `chatgrid/gateway:local` (never pushed). */
  imageName: string;
  /** The pinned base images, passed to the Dockerfile as NODE_IMAGE and NGINX_IMAGE (the stack's resolved pins). */
  baseImages: Pick<ImagePins, "node" | "nginx">;
  /**
   * The platform the image is built for (`linux/amd64`, `linux/arm64`): stated, so the provider does not guess and
   * warn, and a change of it is a visible rebuild.
   */
  platform: string;
}

/** `os/arch` as Docker writes a platform (no variant: the stack builds for linux/amd64 or linux/arm64). */
export const DOCKER_PLATFORM = /^linux\/(amd64|arm64)$/;

/**
 * One app image built by the local Docker engine from `apps/<app>/Dockerfile` for one platform, with the stack's
 * pinned base images (infra/images.ts, or the `chatgrid:images` replacements) passed as build arguments. Not pushed.
 * `ref` is the built image's id, so a rebuilt image replaces the containers that run it while an unchanged one
 * leaves them alone.
 */
export class AppImage extends pulumi.ComponentResource {
  readonly image: docker.Image;
  /** The image id (`sha256:…`) for containers. */
  readonly ref: pulumi.Output<string>;
  readonly dockerfile: string;

  constructor(name: string, args: AppImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:AppImage", name, {}, opts);
    this.dockerfile = join(args.repoRoot, "apps", args.app, "Dockerfile");
    if (!existsSync(this.dockerfile)) {
      throw new Error(`AppImage ${args.app}: ${this.dockerfile} does not exist`);
    }
    if (!existsSync(join(args.repoRoot, ".dockerignore"))) {
      throw new Error(
        `AppImage ${args.app}: ${args.repoRoot} has no .dockerignore (the context would hold node_modules)`,
      );
    }
    if (!/^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+$/.test(args.imageName)) {
      throw new Error(`AppImage ${args.app}: imageName must be repository:tag, got "${args.imageName}"`);
    }
    requirePinned(`AppImage ${args.app}: baseImages.node`, args.baseImages.node);
    requirePinned(`AppImage ${args.app}: baseImages.nginx`, args.baseImages.nginx);
    if (!DOCKER_PLATFORM.test(args.platform)) {
      throw new Error(`AppImage ${args.app}: platform must be linux/amd64 or linux/arm64, got "${args.platform}"`);
    }
    this.image = new docker.Image(
      `${name}-build`,
      {
        imageName: args.imageName,
        build: {
          context: args.repoRoot,
          dockerfile: this.dockerfile,
          builderVersion: "BuilderBuildKit",
          platform: args.platform,
          args: baseImageBuildArgs(args.baseImages),
        },
        skipPush: true,
      },
      { parent: this },
    );
    this.ref = this.image.repoDigest;
    this.registerOutputs({ ref: this.ref, imageName: args.imageName });
  }
}
