// `npm run build` (also run by `prepare` and `prepack`): the SDK as an installable library.
//   dist/esm/  tsc's ES modules + .d.ts (relative `.ts` imports rewritten to `.js`)
//   dist/cjs/  esbuild's CommonJS bundles (index.cjs, notebook.cjs) + the same .d.ts in a
//              "type": "commonjs" folder, so `require` consumers get CommonJS-typed declarations
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tmp = join(ROOT, `dist.tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });

const started = Date.now();
const tsc = spawnSync(
  process.execPath,
  [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(tmp, 'esm')],
  { cwd: ROOT, stdio: 'inherit' },
);
if (tsc.status !== 0) {
  rmSync(tmp, { recursive: true, force: true });
  process.exit(tsc.status ?? 1);
}

// tsc rewrites `.ts` specifiers in the JavaScript only; do the same in the declarations so
// consumers' compilers (any resolution mode, no allowImportingTsExtensions) accept them.
const rewriteDts = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) rewriteDts(p);
    else if (e.name.endsWith('.d.ts'))
      writeFileSync(
        p,
        readFileSync(p, 'utf8').replace(/((?:from\s+|import\()['"]\.{1,2}\/[^'"]+?)\.ts(['"])/g, '$1.js$2'),
      );
  }
};
rewriteDts(join(tmp, 'esm'));

const esbuild = await import('esbuild');
// import.meta.url has no CommonJS equivalent: point it at the bundle file itself (only used to
// find the package root and to create require functions, both right from dist/cjs).
await esbuild.build({
  entryPoints: { index: join(ROOT, 'sdk/index.ts'), notebook: join(ROOT, 'sdk/notebook/index.ts') },
  outdir: join(tmp, 'cjs'),
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  define: { 'import.meta.url': '__hf_import_meta_url' },
  banner: { js: 'const __hf_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
});
// The declarations again, for `require` consumers.
const copyDts = (from, to) => {
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) copyDts(join(from, e.name), join(to, e.name));
    else if (e.name.endsWith('.d.ts')) {
      mkdirSync(to, { recursive: true });
      cpSync(join(from, e.name), join(to, e.name));
    }
  }
};
copyDts(join(tmp, 'esm'), join(tmp, 'cjs'));
writeFileSync(join(tmp, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(join(tmp, 'esm', 'package.json'), '{ "type": "module" }\n');

// swap in atomically enough: a failed build above leaves the previous dist/ untouched
rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
renameSync(tmp, join(ROOT, 'dist'));
process.stdout.write(`built dist/ (esm + cjs + .d.ts) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
