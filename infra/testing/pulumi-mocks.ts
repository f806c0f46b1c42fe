import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { awsMockId, awsMockState } from "./aws-mock-state";

/** The part of the engine's RegisterResourceRequest the mock reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getAdditionalsecretoutputsList(): string[];
  getDependenciesList(): string[];
}

/** One resource the program registered, as the engine would have received it. */
export interface RegisteredResource {
  type: string;
  name: string;
  /** Inputs with every Output resolved (what the engine would diff and create). */
  inputs: Record<string, unknown>;
  custom: boolean;
  /** `urn:pulumi:<stack>::chatgrid::<parent type>$<type>::<name>`: the parent's type shows who adopted it. */
  urn: string;
  /** The resource's `additionalSecretOutputs`: the engine (and this mock) returns those outputs as secrets. */
  secretOutputs: string[];
  /**
   * The URNs the engine is told this resource depends on (its `dependsOn`, expanded to a component's children, and
   * the resources its inputs came from): what the engine orders creation by.
   */
  dependencies: string[];
}

export interface MockedEngine {
  /** Every registered resource, in registration order. */
  resources: RegisteredResource[];
  /**
   * Every invoke the program made, by token, allowed or not: a refused invoke reaches the program as an Error with an
   * empty message (the SDK drops the mock's), so this is where a test sees which one it was.
   */
  invokes: string[];
  /** Waits until no registration is in flight (outputs in mocks resolve asynchronously). */
  settle(): Promise<void>;
}

/** The image id a mocked build or pull "produces": stable per resource name, like a real content digest. */
export const fakeImageId = (name: string): string => `sha256:${createHash("sha256").update(name).digest("hex")}`;

/** A value of an Input, once resolved. */
export function resolved<T>(input: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => {
    pulumi.output(input).apply((value) => {
      resolve(value as T);
      return value;
    });
  });
}

/** The value a mocked GeneratedSecret "draws": stable per resource name, 43 base64url characters like a real one. */
export const fakeSecret = (name: string): string =>
  createHash("sha256").update(`generated-secret:${name}`).digest("base64url");
/** The same, for a GeneratedSecret with `encoding: "hex"`: 64 hex characters like a real 32-byte one. */
export const fakeHexSecret = (name: string): string =>
  createHash("sha256").update(`generated-secret:${name}`).digest("hex");

/** Outputs a provider computes that the program reads; everything else echoes the inputs. */
function mockState(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
  switch (type) {
    case "pulumi-nodejs:dynamic/chatgrid:GeneratedSecret":
      if (inputs.encoding === "hex")
        return { byteLength: inputs.byteLength, encoding: "hex", value: fakeHexSecret(name) };
      return { byteLength: inputs.byteLength, value: fakeSecret(name) };
    case "docker:index/image:Image":
      return { ...inputs, repoDigest: fakeImageId(name) };
    case "docker:index/remoteImage:RemoteImage":
      return { ...inputs, imageId: fakeImageId(name), repoDigest: inputs.name };
    default: {
      // What AWS computes (ids, ARNs, endpoints), for the aws stack's types (infra/testing/aws-mock-state.ts).
      const aws = awsMockState(type, name, inputs);
      if (aws) return { ...inputs, ...aws };
      return { ...inputs, name: inputs.name ?? name };
    }
  }
}

/** Invokes a test allows, by token: each returns what the provider would. Any other invoke throws. */
export type MockInvokes = Record<string, (inputs: Record<string, unknown>) => Record<string, unknown>>;

export interface MockEngineOptions {
  /** e.g. `{ "aws:ecr/getAuthorizationToken:getAuthorizationToken": () => ({ userName: "AWS", … }) }`. */
  invokes?: MockInvokes;
  /**
   * As `pulumi preview` runs the program: outputs the mock does not return are unknown, so `apply` callbacks do not
   * run. For a smoke test that the program copes with unknowns; value assertions need `false` (the default).
   */
  preview?: boolean;
}

/**
 * What differs between two mocked graphs, by `<type> <name>`: resources added, removed, and whose inputs changed
 * (what a `pulumi up` from the first configuration to the second would create, delete and update or replace).
 */
export function graphDiff(
  before: readonly RegisteredResource[],
  after: readonly RegisteredResource[],
): { added: string[]; removed: string[]; changed: string[] } {
  const byName = (g: readonly RegisteredResource[]) =>
    new Map(g.map((r) => [`${r.type} ${r.name}`, JSON.stringify(r.inputs)]));
  const [a, b] = [byName(before), byName(after)];
  return {
    added: [...b.keys()].filter((k) => !a.has(k)).sort(),
    removed: [...a.keys()].filter((k) => !b.has(k)).sort(),
    changed: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)).sort(),
  };
}

/** How a secret input reaches the engine: wrapped under this key (pulumi's rpc secret signature). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/**
 * Where a string input contains "undefined" (an Output read before the mock gave it a value, interpolated into a
 * name, URL or JSON document): `<type> <name>: <path>` for each, secrets included. Tests assert it is empty. A
 * dynamic resource's `__provider` (its provider's serialized source code) is not a value and is skipped.
 */
export function findUndefined(resources: RegisteredResource[]): string[] {
  const found: string[] = [];
  const walk = (value: unknown, path: string, where: string): void => {
    if (typeof value === "string") {
      if (value.includes("undefined")) found.push(`${where}: ${path}`);
    } else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) walk(item, `${path}[${i}]`, where);
    } else if (typeof value === "object" && value !== null) {
      const record = value as Record<string, unknown>;
      if (SECRET_SIG in record) walk(record.value, path, where);
      else for (const [key, item] of Object.entries(record)) walk(item, path ? `${path}.${key}` : key, where);
    }
  };
  for (const resource of resources) {
    const { __provider: _code, ...inputs } = resource.inputs;
    walk(inputs, "", `${resource.type} ${resource.name}`);
  }
  return found;
}

/**
 * Replaces the Pulumi engine with mocks that record every registration. Call it BEFORE importing the program
 * (`await import(...)`), and again for each independent run: each call starts an empty engine.
 */
export async function mockEngine(stack = "local", options: MockEngineOptions = {}): Promise<MockedEngine> {
  const resources: RegisteredResource[] = [];
  const invokes: string[] = [];
  let count = 0;
  // What each registration asked to be secret (the mock's newResource does not see the request's options).
  const secretOutputs = new Map<string, string[]>();
  const dependencies = new Map<string, string[]>();
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        count++;
        const state = mockState(args.type, args.name, args.inputs);
        const secret = secretOutputs.get(`${args.type}::${args.name}`) ?? [];
        // As the engine does: the listed outputs come back as secrets.
        for (const key of secret) if (key in state) state[key] = pulumi.secret(state[key]);
        const record: RegisteredResource = {
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          custom: args.custom ?? true,
          urn: "",
          secretOutputs: secret,
          dependencies: dependencies.get(`${args.type}::${args.name}`) ?? [],
        };
        resources.push(record);
        const id = args.custom ? (awsMockId(args.type, args.name, args.inputs) ?? `${args.name}-id`) : undefined;
        return { id, state };
      },
      call(args) {
        invokes.push(args.token);
        const allowed = options.invokes?.[args.token];
        if (allowed) return allowed(args.inputs);
        // Nothing in the program looks data up; an invoke is a change that the tests must learn about.
        throw new Error(`unexpected invoke ${args.token} in the mocked engine (infra/testing/pulumi-mocks.ts)`);
      },
    },
    "chatgrid",
    stack,
    options.preview ?? false,
  );
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    resources: Map<string, { urn: string }>;
    registerResource(req: RegisterRequest, callback: unknown): void;
  };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    secretOutputs.set(`${req.getType()}::${req.getName()}`, req.getAdditionalsecretoutputsList());
    dependencies.set(`${req.getType()}::${req.getName()}`, req.getDependenciesList());
    register(req, callback);
  };
  return {
    resources,
    invokes,
    async settle() {
      // Registrations go through several promise turns each; wait until the count stays put for a while.
      let stable = 0;
      let last = -1;
      while (stable < 5) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (count === last) stable++;
        else {
          stable = 0;
          last = count;
        }
      }
      const urns = [...monitor.resources.keys()];
      for (const record of resources) {
        const match = urns.filter((urn) => {
          const parts = urn.split("::");
          return parts.slice(3).join("::") === record.name && parts[2]?.split("$").pop() === record.type;
        });
        if (match.length !== 1) throw new Error(`no unique URN for ${record.type} ${record.name}: ${match.join(", ")}`);
        record.urn = match[0]!;
      }
    },
  };
}
