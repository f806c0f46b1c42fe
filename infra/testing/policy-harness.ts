// Runs the policy pack's rules (infra/policy/rules.ts) without the Pulumi CLI: over the resources a mocked engine
// recorded (infra/testing/pulumi-mocks.ts) or over hand-written fixtures. It builds the arguments the CLI's analyzer
// would (@pulumi/policy's server: secrets unwrapped, props behind the proxy that throws on values unknown during
// preview, `isType`/`asType`/`getConfig`/`notApplicable`) and collects what the rules report. docs/policy.md
// "Tests" describes how it differs from the real analyzer.

import type {
  EnforcementLevel,
  Policies,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import * as policy from "@pulumi/policy";
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey, unknownValue } from "@pulumi/pulumi/runtime/rpc";
import { policies as chatgridPolicies } from "../policy/rules";
import type { RegisteredResource } from "./pulumi-mocks";

/** What the engine sends for a value it does not know yet (preview): put it in a fixture's inputs to simulate one. */
export const UNKNOWN_VALUE: string = unknownValue;

/**
 * @pulumi/policy's typings re-export this from a declaration file that omits it (it is marked internal), so it types
 * as `any`: typed here. It wraps props the way the CLI's analyzer does, throwing on values unknown during preview.
 */
const unknownCheckingProxy = policy.unknownCheckingProxy as <T extends object>(value: T) => T;

/** A resource to evaluate: a mocked engine's registration, or a fixture (see `fixture`). */
export type HarnessResource = Pick<RegisteredResource, "type" | "name" | "inputs"> &
  Partial<Pick<RegisteredResource, "urn" | "custom" | "secretOutputs">> & {
    /** What stack policies see (the CLI gives them outputs). Defaults: see `EvaluateOptions.outputs`. */
    outputs?: Record<string, unknown>;
  };

export interface Violation {
  policy: string;
  enforcementLevel: EnforcementLevel;
  /** The resource's name (names repeat across types: see `type`, `urn`); undefined for the whole stack. */
  resource: string | undefined;
  type: string | undefined;
  urn: string | undefined;
  /** What the rule reported (the CLI prints the policy's description, a newline, then this). */
  message: string;
}

export interface NotApplicable {
  policy: string;
  /** The resource's name and type; undefined for a stack policy. */
  resource: string | undefined;
  type: string | undefined;
  reason: string | undefined;
}

export interface Evaluation {
  violations: Violation[];
  /** Every (policy, resource) pair a policy declared not applicable, with its reason. */
  notApplicable: NotApplicable[];
  /**
   * Per policy, the names of the resources it applied to: resource policies list each resource one of their
   * validations ran on to the end; stack policies list "(stack)" when they ran to the end. Policies that applied to
   * nothing are absent.
   */
  applied: Record<string, string[]>;
}

export interface EvaluateOptions {
  /** The rules to run; default: every rule of the pack. */
  policies?: Policies;
  /** Per-policy configuration as the CLI's `--policy-pack-config` file gives it (`enforcementLevel` included). */
  config?: Record<string, Record<string, unknown>>;
  stackTags?: Record<string, string>;
  /**
   * Where stack policies' props come from when a resource has no `outputs`: "mocked" (default) reads the state the
   * mocked engine returned for the resource's URN, falling back to the inputs; "inputs" always uses the inputs.
   */
  outputs?: "mocked" | "inputs";
}

/** A hand-written resource, as the mocked engine would have recorded it. */
export function fixture(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  outputs?: Record<string, unknown>,
): HarnessResource {
  return {
    type,
    name,
    inputs,
    urn: `urn:pulumi:fixture::chatgrid::${type}::${name}`,
    custom: true,
    secretOutputs: [],
    ...(outputs ? { outputs } : {}),
  };
}

/** Runs the rules over the resources; returns every violation (advisory ones included). */
export async function evaluate(resources: readonly HarnessResource[], options?: EvaluateOptions): Promise<Violation[]> {
  return (await evaluateDetailed(resources, options)).violations;
}

/** Runs the rules over the resources; returns violations, not-applicable verdicts and what each rule applied to. */
export async function evaluateDetailed(
  resources: readonly HarnessResource[],
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const result: Evaluation = { violations: [], notApplicable: [], applied: {} };
  const applied = (name: string, resource: string) => {
    const list = result.applied[name] ?? [];
    result.applied[name] = list;
    if (!list.includes(resource)) list.push(resource);
  };
  for (const p of options.policies ?? chatgridPolicies) {
    const level = levelOf(p.name, p.enforcementLevel, options);
    if (level === "disabled") continue;
    if (isStackPolicy(p)) {
      const args = stackValidationArgs(resources, p.name, options);
      const outcome = await run(p.name, () =>
        p.validateStack(args, report(p.name, level, resources, result, undefined)),
      );
      if (outcome.kind === "done") applied(p.name, "(stack)");
      else record(result, p.name, undefined, undefined, outcome);
      continue;
    }
    if (!p.validateResource) continue;
    const validations = Array.isArray(p.validateResource) ? p.validateResource : [p.validateResource];
    for (const r of resources) {
      const args = resourceValidationArgs(r, p.name, options);
      const reasons: (string | undefined)[] = [];
      let ran = false;
      for (const validate of validations) {
        // As the CLI does: a single validation that carries its resource type is not even called for other types.
        const only = pulumiTypeOf(validate);
        if (!Array.isArray(p.validateResource) && only !== undefined && only !== r.type) {
          reasons.push(`Policy only applies to resources of type '${only}'`);
          continue;
        }
        const outcome = await run(p.name, () => validate(args, report(p.name, level, resources, result, r)));
        if (outcome.kind === "done") ran = true;
        else if (outcome.kind === "notApplicable") reasons.push(outcome.reason);
        else record(result, p.name, r, args.urn, outcome);
      }
      if (ran) applied(p.name, r.name);
      else
        for (const reason of reasons)
          result.notApplicable.push({ policy: p.name, resource: r.name, type: r.type, reason });
    }
  }
  return result;
}

/** The arguments the CLI passes a resource policy's validation for this resource (props = its inputs). */
export function resourceValidationArgs(
  resource: HarnessResource,
  policyName = "",
  options: EvaluateOptions = {},
): ResourceValidationArgs {
  const props = unknownCheckingProxy(plain(resource.inputs) as Record<string, unknown>);
  return {
    type: resource.type,
    props,
    urn: urnOf(resource),
    name: resource.name,
    opts: optionsOf(resource),
    stackTags: new Map(Object.entries(options.stackTags ?? {})),
    isType: (resourceClass) => isTypeOf(resource.type, resourceClass),
    asType: <TResource extends pulumi.Resource, TArgs>(resourceClass: ClassOf<TResource, TArgs>) =>
      isTypeOf(resource.type, resourceClass) ? (props as pulumi.Unwrap<NonNullable<TArgs>>) : undefined,
    getConfig: <T extends object>() => configOf(policyName, options) as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicableError(reason);
    },
  };
}

/** The arguments the CLI passes a stack policy (props = outputs, see `EvaluateOptions.outputs`). */
export function stackValidationArgs(
  resources: readonly HarnessResource[],
  policyName = "",
  options: EvaluateOptions = {},
): StackValidationArgs {
  const mocked = options.outputs === "inputs" ? new Map<string, unknown>() : mockedStates();
  const policyResources = resources.map((r): PolicyResource => {
    const props = unknownCheckingProxy(plain(r.outputs ?? mocked.get(urnOf(r)) ?? r.inputs) as Record<string, unknown>);
    return {
      type: r.type,
      props,
      urn: urnOf(r),
      name: r.name,
      opts: optionsOf(r),
      dependencies: [],
      propertyDependencies: {},
      isType: (resourceClass) => isTypeOf(r.type, resourceClass),
      // The CLI returns the props as the resolved resource; so does this.
      asType: (resourceClass) => (isTypeOf(r.type, resourceClass) ? (props as never) : undefined),
    };
  });
  return {
    resources: policyResources,
    stackTags: new Map(Object.entries(options.stackTags ?? {})),
    getConfig: <T extends object>() => configOf(policyName, options) as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicableError(reason);
    },
  };
}

/**
 * The resources with `outputs` set from the mocked engine's recorded state. `evaluate` reads that state itself, but
 * from the engine that is current when it runs: call this right after `engine.settle()` when the evaluation comes
 * after another `mockEngine()` (each starts an empty engine).
 */
export function withMockedOutputs(resources: readonly HarnessResource[]): HarnessResource[] {
  const states = mockedStates();
  return resources.map((r) => {
    const state = states.get(urnOf(r));
    return r.outputs !== undefined || state === undefined ? r : { ...r, outputs: state as Record<string, unknown> };
  });
}

/** Violations as `policy resource: message` lines, for readable assertions. */
export const describeViolations = (violations: readonly Violation[]): string[] =>
  violations.map((v) => `${v.policy} ${v.resource ?? "(stack)"}: ${v.message}`);

// ------------------------------------------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: @pulumi/policy's own signature for resource classes (asType).
type ClassOf<TResource extends pulumi.Resource, TArgs> = new (name: string, args: TArgs, ...rest: any[]) => TResource;
type AnyClass = Parameters<ResourceValidationArgs["isType"]>[0];

class NotApplicableError extends Error {
  constructor(readonly reason: string | undefined) {
    super(reason ?? "Policy does not apply");
  }
}

type Outcome =
  | { kind: "done" }
  | { kind: "notApplicable"; reason: string | undefined }
  | { kind: "unknown"; message: string };

/** Runs one validation as the CLI's analyzer does: not-applicable and unknown-during-preview are outcomes, not errors. */
async function run(policyName: string, validate: () => void | Promise<void>): Promise<Outcome> {
  try {
    await validate();
    return { kind: "done" };
  } catch (error) {
    if (error instanceof NotApplicableError) return { kind: "notApplicable", reason: error.reason };
    if (error instanceof Error && error.constructor.name === "UnknownValueError") {
      return { kind: "unknown", message: error.message };
    }
    throw new Error(`policy ${policyName} threw: ${error instanceof Error ? error.stack : String(error)}`);
  }
}

function record(
  result: Evaluation,
  policyName: string,
  resource: HarnessResource | undefined,
  urn: string | undefined,
  outcome: Exclude<Outcome, { kind: "done" }>,
): void {
  if (outcome.kind === "notApplicable") {
    result.notApplicable.push({
      policy: policyName,
      resource: resource?.name,
      type: resource?.type,
      reason: outcome.reason,
    });
  } else {
    // What the CLI reports when a rule reads an unknown value without handling it: an advisory diagnostic.
    result.violations.push({
      policy: policyName,
      enforcementLevel: "advisory",
      resource: resource?.name,
      type: resource?.type,
      urn,
      message: `can't run policy '${policyName}' during preview: ${outcome.message}`,
    });
  }
}

function report(
  policyName: string,
  level: EnforcementLevel,
  resources: readonly HarnessResource[],
  result: Evaluation,
  resource: HarnessResource | undefined,
) {
  return (message: string, urn?: string) => {
    // Resource policies always report against their resource (the CLI ignores `urn` there).
    const target = resource ?? (urn === undefined ? undefined : resources.find((r) => urnOf(r) === urn));
    result.violations.push({
      policy: policyName,
      enforcementLevel: level === "remediate" ? "mandatory" : level,
      resource: target?.name,
      type: target?.type,
      urn: resource ? urnOf(resource) : urn,
      message,
    });
  };
}

const isStackPolicy = (p: ResourceValidationPolicy | StackValidationPolicy): p is StackValidationPolicy =>
  typeof (p as Partial<StackValidationPolicy>).validateStack === "function";

const pulumiTypeOf = (value: unknown): string | undefined => {
  const type = (value as { __pulumiType?: unknown } | undefined)?.__pulumiType;
  return typeof type === "string" ? type : undefined;
};

/** As the CLI's analyzer decides it: the class's `__pulumiType`, else its `isInstance`. */
function isTypeOf(type: string, resourceClass: AnyClass): boolean {
  const token = pulumiTypeOf(resourceClass);
  if (token !== undefined) return token === type;
  const isInstance = (resourceClass as { isInstance?: (obj: unknown) => boolean }).isInstance;
  return typeof isInstance === "function" && isInstance({ __pulumiType: type }) === true;
}

function levelOf(name: string, own: EnforcementLevel | undefined, options: EvaluateOptions): EnforcementLevel {
  const configured = options.config?.[name]?.enforcementLevel;
  return (typeof configured === "string" ? (configured as EnforcementLevel) : undefined) ?? own ?? "advisory";
}

function configOf(name: string, options: EvaluateOptions): Record<string, unknown> {
  const { enforcementLevel: _level, ...properties } = options.config?.[name] ?? {};
  return properties;
}

const urnOf = (r: HarnessResource): string =>
  r.urn !== undefined && r.urn !== "" ? r.urn : `urn:pulumi:fixture::chatgrid::${r.type}::${r.name}`;

const optionsOf = (r: HarnessResource): PolicyResourceOptions => ({
  protect: false,
  ignoreChanges: [],
  aliases: [],
  customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
  additionalSecretOutputs: r.secretOutputs ?? [],
});

/** Secrets unwrapped (the analyzer hands policies plain values), as plain objects and arrays. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value !== "object" || value === null) return value;
  const record = value as Record<string, unknown>;
  if (record[specialSigKey] === specialSecretSig) return plain(record.value);
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  return Object.fromEntries(
    Object.entries(record)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, plain(v)]),
  );
}

/**
 * The state the mocked engine returned per URN (its outputs, serialized as the engine holds them), read from the
 * mock monitor the way infra/testing/pulumi-mocks.ts reads its URNs. Empty when no mocked engine runs.
 */
function mockedStates(): Map<string, unknown> {
  let monitor: unknown;
  try {
    monitor = pulumi.runtime.getMonitor();
  } catch {
    return new Map();
  }
  const registered = (monitor as { resources?: unknown } | undefined)?.resources;
  const states = new Map<string, unknown>();
  if (!(registered instanceof Map)) return states;
  for (const [urn, entry] of registered as Map<string, { state?: unknown }>) {
    if (entry.state !== undefined) states.set(urn, entry.state);
  }
  return states;
}
