// The policy pack's entry for the Pulumi CLI (package.json "main"). The CLI's Node.js runner require()s the pack
// directory after registering its own TypeScript compiler (a vendored ts-node for CommonJS), which cannot load this
// ESM TypeScript. So: tsx's loader first (what `node --import tsx` runs for the Pulumi program, see Pulumi.yaml),
// then index.ts through it. The runner awaits the exported promise. See docs/policy.md "Running the pack".
module.exports = import("tsx").then(() => import("./index.ts"));
