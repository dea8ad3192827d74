// Development links, made by `prepare` after `npm ci` in the repository (never in an install):
// - node_modules/hyperfeatures -> .. so notebooks in this repo import the built package by name,
//   with types, exactly as a user's project does;
// - node_modules/.bin/tsc -> typescript's: tslab (a devDependency) brings a TypeScript fork
//   whose `tsc` bin would otherwise shadow the pinned compiler.
import { existsSync, lstatSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const nm = join(ROOT, 'node_modules');
if (existsSync(nm)) {
  const self = join(nm, 'hyperfeatures');
  if (!lstatSafe(self)) symlinkSync('..', self, 'junction');
  for (const bin of ['tsc', 'tsserver']) {
    const link = join(nm, '.bin', bin);
    const target = `../typescript/bin/${bin}`;
    if (existsSync(join(nm, 'typescript', 'bin', bin))) {
      rmSync(link, { force: true });
      symlinkSync(target, link);
    }
  }
}

function lstatSafe(p) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
