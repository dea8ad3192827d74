/**
 * The installed package's root folder (where package.json, assets/ and dist/ live). Found by
 * walking up from this module, so it is right for the sources (sdk/core), the ESM build
 * (dist/esm/core) and the CommonJS bundle (dist/cjs) alike.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'hyperfeatures')
          return (root = dir);
      } catch {
        // not ours (or unreadable): keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir)
      throw new Error(
        'hyperfeatures: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url),
      );
    dir = up;
  }
}

/** A file shipped with the package under assets/. */
export function assetPath(...parts: string[]): string {
  return join(packageRoot(), 'assets', ...parts);
}

/** The package's version from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string })
    .version;
}

/**
 * Where Node would find `id` from the first of `bases` that has it (a user's project first,
 * then this package), or undefined: for optional peers such as tslab and TypeScript.
 */
export function resolveFrom(bases: readonly string[], id: string): string | undefined {
  for (const base of bases)
    try {
      return createRequire(join(base, 'noop.js')).resolve(id);
    } catch {
      // not there: the next place
    }
  return undefined;
}
