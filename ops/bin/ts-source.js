// Runs the TypeScript source: `node --import ./ops/bin/ts-source.js FILE.ts`. The source's imports
// name the compiled file (`./x.js`, as NodeNext resolution wants); on a Node that strips types
// itself (22.18+, 24: `process.features.typescript`) with in-thread hooks (`module.registerHooks`),
// a `.js` a `.ts` file imports that does not exist resolves to the `.ts` beside it, and Node runs
// it natively: `custody-node --help` took 1.45 s of CPU so against 2.2 s through tsx, whose loader
// runs on a thread of its own (Node 24, this 2-core machine, 7 December 2026). Elsewhere (the
// system's Node 20) it registers tsx, as before. The source is erasable TypeScript only
// (tsconfig `erasableSyntaxOnly`): no enums, namespaces or parameter properties.
import { existsSync } from "node:fs";
import module from "node:module";
import { fileURLToPath } from "node:url";

// V8 keeps compiled code on disk between runs (NODE_COMPILE_CACHE sets where), as the CLI does
// (custody-node.js): a process spawned on the source (a test's killed child, a simulation's host)
// loads viem, the AWS SDK and our modules (api/cli.ts) in ~1.8 s of CPU instead of ~2.6 (Node 24).
module.enableCompileCache?.();

/** True when this Node can run our TypeScript without tsx. */
export const nativeTypeScript =
  Boolean(process.features.typescript) && typeof module.registerHooks === "function";

if (nativeTypeScript) {
  module.registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      if (
        parent?.startsWith("file:") &&
        parent.endsWith(".ts") &&
        specifier.endsWith(".js") &&
        (specifier.startsWith("./") || specifier.startsWith("../"))
      ) {
        const url = new URL(specifier, parent);
        if (!existsSync(fileURLToPath(url))) {
          const ts = new URL(`${url.href.slice(0, -".js".length)}.ts`);
          if (existsSync(fileURLToPath(ts))) return nextResolve(ts.href, context);
        }
      }
      return nextResolve(specifier, context);
    },
  });
} else {
  const { register } = await import("tsx/esm/api");
  register();
}
