import { existsSync } from "node:fs";
import { join } from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { baseImageBuildArgs } from "../images";

/** The apps that have an image of their own. */
export type AppName = "gateway" | "ai" | "web";

export interface AppImageArgs {
  app: AppName;
  /** The repository root: the build context of every image (see .dockerignore). */
  repoRoot: string;
  /** Local tag, e.g. `chatgrid/gateway:local` (never pushed). */
  imageName: string;
}

/**
 * One app image built by the local Docker engine from `apps/<app>/Dockerfile`, with the base images pinned in
 * infra/images.ts passed as build arguments. Not pushed. `ref` is the built image's id, so a rebuilt image replaces
 * the containers that run it while an unchanged one leaves them alone.
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
    this.image = new docker.Image(
      `${name}-build`,
      {
        imageName: args.imageName,
        build: {
          context: args.repoRoot,
          dockerfile: this.dockerfile,
          builderVersion: "BuilderBuildKit",
          args: baseImageBuildArgs,
        },
        skipPush: true,
      },
      { parent: this },
    );
    this.ref = this.image.repoDigest;
    this.registerOutputs({ ref: this.ref, imageName: args.imageName });
  }
}
