import { createRequire } from "node:module";
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { mockEngine, resolved } from "../testing/pulumi-mocks";

// The provider is what `pulumi up` runs (in Pulumi's dynamic provider host, from the text serialized into the
// state); the class is what the program registers (on the mocked engine here).

type Provider = Required<Pick<pulumi.dynamic.ResourceProvider, "create" | "diff" | "update" | "read">>;
let module: typeof import("./generated-secret");
let provider: Provider;

beforeAll(async () => {
  await mockEngine("local");
  module = await import("./generated-secret");
  provider = module.generatedSecretProvider as Provider;
});

const base64url = (length: number) => new RegExp(`^[A-Za-z0-9_-]{${length}}$`);

describe("the GeneratedSecret provider", () => {
  it("create draws byteLength random bytes as base64url; two creates never draw the same", async () => {
    const a = await provider.create({ byteLength: 32 });
    const b = await provider.create({ byteLength: 32 });
    expect(a.outs.value).toMatch(base64url(43));
    expect(Buffer.from(a.outs.value, "base64url")).toHaveLength(32);
    expect(a.outs.value).not.toBe(b.outs.value);
    expect(a.id).not.toBe(b.id);
    expect(a.id).not.toContain(a.outs.value);
    expect((await provider.create({ byteLength: 48 })).outs.value).toMatch(base64url(64));
  });

  it("diff: no change for the same byteLength (whatever the serialized provider), replace when it changes", async () => {
    const { id, outs } = await provider.create({ byteLength: 32 });
    const olds = { ...outs, __provider: "exports.handler = old" };
    expect(await provider.diff(id, olds, { byteLength: 32, __provider: "exports.handler = new" })).toMatchObject({
      changes: false,
      replaces: [],
    });
    expect(await provider.diff(id, olds, { byteLength: 48 })).toMatchObject({
      changes: true,
      replaces: ["byteLength"],
    });
  });

  it("update keeps the stored value (never regenerates); read returns the state as it is", async () => {
    const { id, outs } = await provider.create({ byteLength: 32 });
    expect((await provider.update(id, outs, { byteLength: 32 })).outs).toEqual(outs);
    expect(await provider.read(id, outs)).toEqual({ id, props: outs });
  });

  it("survives serialization as Pulumi does it: the text, loaded as the dynamic provider host loads it, works", async () => {
    const serialized = await pulumi.runtime.serializeFunction(() => module.generatedSecretProvider, {
      allowSecrets: false,
    });
    // What @pulumi/pulumi/cmd/dynamic-provider does with the state's `__provider`.
    const requireFromString = createRequire(import.meta.url)("require-from-string") as (code: string) => {
      handler: () => Provider;
    };
    const loaded = requireFromString(serialized.text).handler();
    const { id, outs } = await loaded.create({ byteLength: 32 });
    expect(outs.value).toMatch(base64url(43));
    expect((await loaded.update(id, outs, { byteLength: 32 })).outs.value).toBe(outs.value);
    expect(await loaded.diff(id, outs, { byteLength: 32 })).toMatchObject({ changes: false });
  });
});

describe("GeneratedSecret", () => {
  it("registers pulumi-nodejs:dynamic/chatgrid:GeneratedSecret with its value as an additional secret output", async () => {
    const engine = await mockEngine("local");
    const secret = new module.GeneratedSecret("s1");
    expect(await pulumi.isSecret(secret.value)).toBe(true);
    expect(await resolved(secret.value)).toMatch(base64url(43));
    await engine.settle();
    const [record] = engine.resources;
    expect(record!.type).toBe(module.GENERATED_SECRET_TYPE);
    expect(record!.type).toBe("pulumi-nodejs:dynamic/chatgrid:GeneratedSecret");
    expect(record!.secretOutputs).toEqual(["value"]);
    expect(record!.inputs.byteLength).toBe(32);
    // The provider travels with the resource, as code.
    expect(record!.inputs.__provider).toContain("getRandomValues");
  });

  it.each([
    [0, "GeneratedSecret s2: byteLength must be a whole number from 24 to 1024, got 0"],
    [16, "GeneratedSecret s2: byteLength must be a whole number from 24 to 1024, got 16"],
    [32.5, "GeneratedSecret s2: byteLength must be a whole number from 24 to 1024, got 32.5"],
    [4096, "GeneratedSecret s2: byteLength must be a whole number from 24 to 1024, got 4096"],
  ])("refuses byteLength %s before registering anything", async (byteLength, message) => {
    const engine = await mockEngine("local");
    expect(() => new module.GeneratedSecret("s2", { byteLength })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});
