import * as pulumi from "@pulumi/pulumi";

/** The resource type in the state: `pulumi-nodejs:dynamic/chatgrid:HostFile`. */
export const HOST_FILE_TYPE = "pulumi-nodejs:dynamic/chatgrid:HostFile";

export interface HostFileArgs {
  /** Absolute path of the file on the Docker host (the engine is local: containers bind-mount its directory). */
  path: string;
  content: string;
}

interface HostFileState {
  path: string;
  content: string;
}

/**
 * Writes `content` to `path` atomically (a temp file renamed over it: a reader never sees half a file). Pulumi
 * serializes the provider into the state with the resource, so the functions use only globals (no imported binding,
 * no `import()`): the built-in modules come from `process.getBuiltinModule`.
 */
export const hostFileProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: HostFileState) {
    const fs = globalThis.process.getBuiltinModule("node:fs/promises");
    const path = globalThis.process.getBuiltinModule("node:path");
    await fs.mkdir(path.dirname(inputs.path), { recursive: true, mode: 0o755 });
    const temp = `${inputs.path}.${globalThis.process.pid}.tmp`;
    await fs.writeFile(temp, inputs.content, { mode: 0o644 });
    await fs.chmod(temp, 0o644);
    await fs.rename(temp, inputs.path);
    return { id: inputs.path, outs: { path: inputs.path, content: inputs.content } };
  },
  async diff(_id: string, olds: HostFileState, news: HostFileState) {
    // Only the inputs that mean something: the serialized provider (`__provider`) may differ between versions.
    const moved = olds.path !== news.path;
    return { changes: moved || olds.content !== news.content, replaces: moved ? ["path"] : [] };
  },
  async update(_id: string, _olds: HostFileState, news: HostFileState) {
    // The same write as create (a provider's functions cannot share a helper: each is serialized on its own).
    const fs = globalThis.process.getBuiltinModule("node:fs/promises");
    const temp = `${news.path}.${globalThis.process.pid}.tmp`;
    await fs.writeFile(temp, news.content, { mode: 0o644 });
    await fs.chmod(temp, 0o644);
    await fs.rename(temp, news.path);
    return { outs: { path: news.path, content: news.content } };
  },
  async delete(_id: string, props: HostFileState) {
    const fs = globalThis.process.getBuiltinModule("node:fs/promises");
    await fs.rm(props.path, { force: true });
  },
};

/**
 * A file on the Docker host, owned by the stack: written on `up`, rewritten in place on a change (so the container
 * that bind-mounts its directory is not replaced), removed on `destroy`.
 */
export class HostFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly content: pulumi.Output<string>;

  constructor(name: string, args: HostFileArgs, opts: pulumi.CustomResourceOptions = {}) {
    if (!args.path.startsWith("/")) throw new Error(`HostFile ${name}: path must be absolute, got "${args.path}"`);
    super(hostFileProvider, name, { path: args.path, content: args.content }, opts, "chatgrid", "HostFile");
  }
}
