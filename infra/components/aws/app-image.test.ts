import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { images } from "../../images";
import { fakeBuildDigest, MOCK_ACCOUNT } from "../../testing/aws-mock-state";
import { findUndefined, mockEngine, resolved } from "../../testing/pulumi-mocks";
import { type AwsAppImageArgs, contextRules, contextTag } from "./app-image";

const REPO = join(import.meta.dirname, "..", "..", "..");
const ECR_TOKEN = "aws:ecr/getAuthorizationToken:getAuthorizationToken";
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

describe("contextTag: the image tag is a digest of what the build reads", () => {
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-context-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("stable for the same tree; a source file changes it; Markdown, node_modules and dist do not", () => {
    for (const path of [
      "packages/protocol/src",
      "apps/gateway/src",
      "apps/gateway/node_modules/x",
      "apps/gateway/dist",
    ]) {
      mkdirSync(join(dir, path), { recursive: true });
    }
    cpSync(join(REPO, ".dockerignore"), join(dir, ".dockerignore"));
    writeFileSync(join(dir, "package.json"), "{}");
    // Outside the allow-list: not in the context, not in the tag.
    writeFileSync(join(dir, "biome.json"), "{}");
    writeFileSync(join(dir, "packages/protocol/src/index.ts"), "export const a = 1;");
    writeFileSync(join(dir, "apps/gateway/src/main.ts"), "main();");
    const first = contextTag(dir, "gateway");
    expect(first).toMatch(/^gateway-[0-9a-f]{16}$/);
    expect(contextTag(dir, "gateway")).toBe(first);
    writeFileSync(join(dir, "apps/gateway/README.md"), "docs");
    writeFileSync(join(dir, "apps/gateway/node_modules/x/index.js"), "x");
    writeFileSync(join(dir, "apps/gateway/dist/main.js"), "built");
    writeFileSync(join(dir, "biome.json"), '{"changed":true}');
    expect(contextTag(dir, "gateway")).toBe(first);
    // The platform and the build arguments are part of the build's input, so of the tag.
    expect(contextTag(dir, "gateway", { platform: "linux/arm64" })).not.toBe(
      contextTag(dir, "gateway", { platform: "linux/amd64" }),
    );
    writeFileSync(join(dir, "packages/protocol/src/index.ts"), "export const a = 2;");
    expect(contextTag(dir, "gateway")).not.toBe(first);
    // A copy of the same tree has the same tag (paths are relative to the root).
    const copy = mkdtempSync(join(tmpdir(), "chatgrid-context-copy-"));
    cpSync(dir, copy, { recursive: true });
    expect(contextTag(copy, "gateway")).toBe(contextTag(dir, "gateway"));
    rmSync(copy, { recursive: true, force: true });
  });
});

describe("contextRules: the tag reads .dockerignore's allow-list, and only forms it understands", () => {
  it("the repository's .dockerignore: what the Dockerfiles copy, without installed or built trees", () => {
    const rules = contextRules(readFileSync(join(REPO, ".dockerignore"), "utf8"));
    expect(rules.include).toEqual([
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "scripts/build-app.mjs",
      "packages",
      "apps",
      "infra/package.json",
    ]);
    expect(rules.skipNames).toEqual(expect.arrayContaining(["node_modules", "dist"]));
    expect(rules.skipSuffixes).toContain(".md");
    // Every COPY source of the three Dockerfiles is inside the allow-list.
    for (const app of ["gateway", "ai", "web"]) {
      const dockerfile = readFileSync(join(REPO, "apps", app, "Dockerfile"), "utf8");
      for (const [, sources] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
        for (const source of sources!.split(" ")) {
          const path = source.replace(/\/$/, "");
          expect(
            rules.include.some((allowed) => path === allowed || path.startsWith(`${allowed}/`)),
            `${app}: COPY ${path}`,
          ).toBe(true);
        }
      }
    }
  });

  it("refuses a deny-list and forms it cannot hash exactly", () => {
    expect(() => contextRules("node_modules\n")).toThrow(
      'contextTag: .dockerignore must start with "*" (an allow-list)',
    );
    expect(() => contextRules("*\n!apps\napps/*/tmp\n")).toThrow(
      'contextTag: .dockerignore line "apps/*/tmp" is not a form contextTag reads (!path, **/name, **/*.ext)',
    );
  });
});

describe("AwsAppImage on the mocked engine", () => {
  async function build(args: Partial<AwsAppImageArgs> = {}) {
    const engine = await mockEngine("aws", {
      invokes: { [ECR_TOKEN]: () => ({ userName: "AWS", password: "mock-ecr-token" }) },
    });
    const { AwsAppImage } = await import("./app-image");
    const image = new AwsAppImage("gateway", {
      app: "gateway",
      repoRoot: REPO,
      baseImages: images,
      platform: "linux/arm64",
      tags: { "chatgrid:stack": "aws" },
      ...args,
    });
    const ref = await resolved(image.ref);
    await engine.settle();
    return { engine, ref };
  }

  it("a repository with immutable tags and scan on push, a lifecycle policy, a pushed build for the platform, referenced by digest", async () => {
    const { engine, ref } = await build();
    expect(findUndefined(engine.resources)).toEqual([]);
    const of = (type: string) => engine.resources.filter((r) => r.type === type);
    const [repository] = of("aws:ecr/repository:Repository");
    expect(repository!.inputs).toMatchObject({
      imageTagMutability: "IMMUTABLE",
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfigurations: [{ encryptionType: "AES256" }],
      forceDelete: false,
    });
    const policy = JSON.parse(of("aws:ecr/lifecyclePolicy:LifecyclePolicy")[0]!.inputs.policy as string) as {
      rules: { selection: Record<string, unknown>; action: { type: string } }[];
    };
    expect(policy.rules.map((r) => r.selection)).toEqual([
      { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 1 },
      { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 20 },
    ]);
    const [built] = of("docker-build:index:Image");
    expect(built!.inputs).toMatchObject({
      push: true,
      platforms: ["linux/arm64"],
      context: { location: REPO },
      dockerfile: { location: join(REPO, "apps", "gateway", "Dockerfile") },
      buildArgs: { NODE_IMAGE: images.node, NGINX_IMAGE: images.nginx },
    });
    const [tag] = built!.inputs.tags as string[];
    expect(tag).toMatch(
      new RegExp(`^${MOCK_ACCOUNT}\\.dkr\\.ecr\\.us-east-1\\.amazonaws\\.com/[^:]+:gateway-[0-9a-f]{16}$`),
    );
    // The registries carry the ECR token: the whole input is a secret (never in the state or a preview in clear).
    const registries = built!.inputs.registries as Record<string, unknown>;
    expect(SECRET_SIG in registries).toBe(true);
    expect(registries.value).toEqual([
      { address: `${MOCK_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`, username: "AWS", password: "mock-ecr-token" },
    ]);
    expect(ref).toBe(`${tag!.split(":")[0]}@${fakeBuildDigest("gateway-build")}`);
  });

  it("wrong arguments: exact messages, nothing registered", async () => {
    await expect(build({ app: "nope" as "gateway" })).rejects.toThrow(
      /AwsAppImage nope: .*apps\/nope\/Dockerfile does not exist/,
    );
    await expect(build({ keepImages: 1 })).rejects.toThrow(
      "AwsAppImage gateway: keepImages must be a whole number of at least 2, got 1",
    );
    await expect(build({ baseImages: { ...images, node: "node:20" } })).rejects.toThrow(
      "AwsAppImage gateway: baseImages.node",
    );
  });
});
