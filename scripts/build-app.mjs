#!/usr/bin/env node
// Builds one Node app of the monorepo (apps/gateway, apps/ai) into a self-contained dist/:
//
//   dist/main.js        src/main.ts bundled by esbuild (ESM, platform node), the @chatgrid/* workspace packages inside
//   dist/package.json   "type": "module" and the npm packages main.js imports, at their installed versions
//   dist/node_modules/  exactly those packages and what they need at run time, copied from the installed tree
//
// `node dist/main.js` then runs with nothing else from the repository (the Docker images copy dist/ alone). npm
// packages stay external (not bundled): each must be declared in the package.json of the workspace that imports it,
// otherwise the build fails naming the import.
//
// Usage: node scripts/build-app.mjs [appDir]   (appDir defaults to the current directory, as `npm run build` sets it)
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const appDir = resolve(process.argv[2] ?? process.cwd());
const distDir = join(appDir, "dist");
const readJson = (file) => JSON.parse(readFileSync(file, "utf8"));

/** name → directory of every workspace package (the root's `workspaces`, `dir/*` globs and plain directories). */
function workspacePackages() {
  const found = new Map();
  for (const pattern of readJson(join(repoRoot, "package.json")).workspaces ?? []) {
    const dirs = pattern.endsWith("/*")
      ? readdirSync(join(repoRoot, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((entry) => entry.isDirectory())
          .map((entry) => join(repoRoot, pattern.slice(0, -2), entry.name))
      : [join(repoRoot, pattern)];
    for (const dir of dirs) {
      if (existsSync(join(dir, "package.json"))) found.set(readJson(join(dir, "package.json")).name, dir);
    }
  }
  return found;
}

const workspaces = workspacePackages();
const app = readJson(join(appDir, "package.json"));
const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
/** `@scope/name/sub/path` → `@scope/name`, `name/sub` → `name`. */
const packageName = (specifier) => specifier.split("/", specifier.startsWith("@") ? 2 : 1).join("/");
const declared = (pkg) => ({ ...pkg.peerDependencies, ...pkg.optionalDependencies, ...pkg.dependencies });

/** The workspace directory that owns a source file (the deepest one containing it). */
function owningWorkspace(file) {
  let best;
  for (const dir of workspaces.values()) {
    if ((file === dir || file.startsWith(dir + sep)) && (!best || dir.length > best.length)) best = dir;
  }
  return best;
}

/** The npm dependencies the app may use: its own and those of the workspace packages it depends on, transitively. */
function allowedDependencies() {
  const allowed = new Set();
  const seen = new Set();
  const visit = (dir) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    for (const name of Object.keys(declared(readJson(join(dir, "package.json"))))) {
      if (workspaces.has(name)) visit(workspaces.get(name));
      else allowed.add(name);
    }
  };
  visit(appDir);
  return allowed;
}

const allowed = allowedDependencies();
const warned = new Set();

/**
 * Keeps npm packages external and lets esbuild bundle workspace packages. An npm import that no package.json of the
 * app's workspace chain declares fails the build; one declared by the app but not by the importing workspace is
 * reported (it works here, and would break a workspace built on its own).
 */
const externalsPlugin = {
  name: "chatgrid-externals",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (builtins.has(args.path)) return { external: true };
      const name = packageName(args.path);
      const importer = relative(repoRoot, args.importer);
      if (workspaces.has(name)) return undefined;
      if (!allowed.has(name)) {
        return {
          errors: [
            {
              text: `"${name}" is imported by ${importer} but no package.json of ${app.name}'s workspaces declares it`,
            },
          ],
        };
      }
      const owner = owningWorkspace(args.importer);
      if (owner && !(name in declared(readJson(join(owner, "package.json"))))) {
        const key = `${name} ${owner}`;
        if (!warned.has(key)) {
          warned.add(key);
          console.warn(`warning: ${relative(repoRoot, owner)} imports "${name}" (${importer}) without declaring it`);
        }
      }
      return { external: true };
    });
  },
};

/** Where Node finds package `name` from directory `from`: the nearest node_modules/name walking up to the root. */
function resolvePackageDir(name, from) {
  for (let dir = from; dir === repoRoot || dir.startsWith(repoRoot + sep); dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
  }
  return undefined;
}

/**
 * Copies `roots` and everything they need at run time into dist/node_modules, keeping one copy of each version at
 * the top level and nesting a package only where two versions meet. Checked afterwards: from every copied package,
 * each dependency resolves (by Node's walk up) to the very version it resolves to in the repository.
 */
function deployPackages(roots) {
  const target = join(distDir, "node_modules");
  /** target dir → source dir */
  const placed = new Map();
  const queue = [];
  const place = (name, sourceDir, parentTarget) => {
    const top = join(target, name);
    const chosen = !placed.has(top) || placed.get(top) === sourceDir ? top : join(parentTarget, "node_modules", name);
    if (placed.get(chosen) === sourceDir) return;
    if (placed.has(chosen)) throw new Error(`cannot place ${name}: ${chosen} already holds ${placed.get(chosen)}`);
    placed.set(chosen, sourceDir);
    queue.push(chosen);
  };
  for (const name of roots) {
    const dir = resolvePackageDir(name, appDir);
    if (!dir) throw new Error(`${name} is imported but not installed (run npm ci)`);
    place(name, dir, target);
  }
  while (queue.length > 0) {
    const at = queue.shift();
    const source = placed.get(at);
    const pkg = readJson(join(source, "package.json"));
    const optional = new Set([
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.entries(pkg.peerDependenciesMeta ?? {})
        .filter(([, meta]) => meta?.optional)
        .map(([name]) => name),
    ]);
    for (const name of Object.keys(declared(pkg))) {
      const dir = resolvePackageDir(name, source);
      if (!dir) {
        if (optional.has(name) || name in (pkg.peerDependencies ?? {})) continue;
        throw new Error(`${pkg.name} needs ${name}, which is not installed (run npm ci)`);
      }
      place(name, dir, at);
    }
  }
  for (const [at, source] of placed) {
    cpSync(source, at, {
      recursive: true,
      dereference: true,
      // Nested node_modules are placed above, one package at a time (.bin links are not needed at run time); type
      // declarations, TypeScript sources, source maps and Markdown are not loaded by Node.
      filter: (path) => relative(source, path).split(sep)[0] !== "node_modules" && !/\.(ts|mts|cts|map|md)$/.test(path),
    });
  }
  // Self-check of the layout against the repository's resolution.
  for (const [at, source] of placed) {
    const pkg = readJson(join(source, "package.json"));
    for (const name of Object.keys(declared(pkg))) {
      const expected = resolvePackageDir(name, source);
      if (!expected) continue;
      let found;
      for (let dir = at; dir.startsWith(distDir); dir = dirname(dir)) {
        const candidate = join(dir, "node_modules", name);
        if (placed.has(candidate)) {
          found = placed.get(candidate);
          break;
        }
      }
      if (found !== expected) {
        throw new Error(`${relative(distDir, at)} would load ${name} from ${found ?? "nowhere"}, not ${expected}`);
      }
    }
  }
  return placed.size;
}

const entry = join(appDir, "src", "main.ts");
if (!existsSync(entry)) throw new Error(`${relative(repoRoot, entry)} does not exist`);
rmSync(distDir, { recursive: true, force: true });
mkdirSync(distDir, { recursive: true });

const result = await build({
  entryPoints: [entry],
  outfile: join(distDir, "main.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  metafile: true,
  logLevel: "warning",
  legalComments: "none",
  plugins: [externalsPlugin],
  // CommonJS code inside the bundle (if any) may call require(); ESM has none, so give it one.
  banner: {
    js: 'import { createRequire as __chatgridCreateRequire } from "node:module";\nconst require = __chatgridCreateRequire(import.meta.url);',
  },
});

const externals = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const imported of output.imports) {
    if (imported.external && !builtins.has(imported.path)) externals.add(packageName(imported.path));
  }
}
const roots = [...externals].sort();
const copied = deployPackages(roots);
const versionOf = (name) => readJson(join(distDir, "node_modules", name, "package.json")).version;
writeFileSync(
  join(distDir, "package.json"),
  `${JSON.stringify(
    {
      name: `${app.name}-dist`,
      version: app.version,
      private: true,
      description: `${app.name} built by scripts/build-app.mjs; run with: node main.js`,
      type: "module",
      main: "main.js",
      dependencies: Object.fromEntries(roots.map((name) => [name, versionOf(name)])),
    },
    null,
    2,
  )}\n`,
);
console.log(
  `${app.name}: ${relative(repoRoot, distDir)}/main.js, ${roots.length} external packages (${roots.join(", ")}), ${copied} copied with their dependencies`,
);
