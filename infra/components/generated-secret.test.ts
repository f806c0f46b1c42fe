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

  it("encoding hex: create writes the bytes as hex and keeps the encoding in the state", async () => {
    const { outs } = await provider.create({ byteLength: 32, encoding: "hex" });
    expect(outs.value).toMatch(/^[0-9a-f]{64}$/);
    expect(Buffer.from(outs.value, "hex")).toHaveLength(32);
    expect(outs.encoding).toBe("hex");
    // The default writes no encoding at all: the state of existing secrets stays as it was.
    expect(Object.keys((await provider.create({ byteLength: 32 })).outs).sort()).toEqual(["byteLength", "value"]);
  });

  it("encoding: no change while it stays, replace when it changes (absent = base64url), update keeps it", async () => {
    const { id, outs } = await provider.create({ byteLength: 32 });
    expect(await provider.diff(id, outs, { byteLength: 32 })).toMatchObject({ changes: false, replaces: [] });
    expect(await provider.diff(id, outs, { byteLength: 32, encoding: "hex" })).toMatchObject({
      changes: true,
      replaces: ["encoding"],
    });
    const hex = await provider.create({ byteLength: 32, encoding: "hex" });
    expect(await provider.diff(hex.id, hex.outs, { byteLength: 32, encoding: "hex" })).toMatchObject({
      changes: false,
    });
    expect(await provider.diff(hex.id, hex.outs, { byteLength: 32 })).toMatchObject({ replaces: ["encoding"] });
    expect(await provider.diff(hex.id, hex.outs, { byteLength: 48 })).toMatchObject({
      replaces: ["byteLength", "encoding"],
    });
    expect((await provider.update(hex.id, hex.outs, { byteLength: 32, encoding: "hex" })).outs).toEqual(hex.outs);
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
    expect((await loaded.create({ byteLength: 32, encoding: "hex" })).outs.value).toMatch(/^[0-9a-f]{64}$/);
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

  it("encoding hex is an input (and the mocked value is hex); base64url, the default, is not an input at all", async () => {
    const engine = await mockEngine("local");
    const hex = new module.GeneratedSecret("s3", { encoding: "hex" });
    new module.GeneratedSecret("s4", { encoding: "base64url" });
    new module.GeneratedSecret("s5");
    expect(await resolved(hex.value)).toMatch(/^[0-9a-f]{64}$/);
    expect(await pulumi.isSecret(hex.value)).toBe(true);
    await engine.settle();
    const named = (name: string) => engine.resources.find((r) => r.name === name)!;
    const [s3, s4, s5] = [named("s3"), named("s4"), named("s5")];
    expect(s3!.inputs.encoding).toBe("hex");
    expect(s3!.secretOutputs).toEqual(["value"]);
    expect("encoding" in s4!.inputs).toBe(false);
    expect("encoding" in s5!.inputs).toBe(false);
    const { __provider: _p4, ...inputs4 } = s4!.inputs;
    const { __provider: _p5, ...inputs5 } = s5!.inputs;
    expect(inputs4).toEqual(inputs5);
    expect(inputs5).toEqual({ byteLength: 32 });
  });

  it("refuses an unknown encoding before registering anything", async () => {
    const engine = await mockEngine("local");
    expect(() => new module.GeneratedSecret("s6", { encoding: "base64" as unknown as "hex" })).toThrow(
      'GeneratedSecret s6: encoding must be "base64url" or "hex", got "base64"',
    );
    await engine.settle();
    expect(engine.resources).toEqual([]);
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
