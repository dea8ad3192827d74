/**
 * The notebook kernel: tslab's TypeScript kernel started by `kernels/start-kernel.cjs` so the
 * SDK's display helpers reach Jupyter. tslab is an optional peer dependency: it is found at
 * install time ($HYPERFEATURES_TSLAB, else the current project, else beside this package) and
 * its path is written into kernel.json, so the kernel runs the same tslab every time.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';
import { packageRoot } from '../core/package-root.ts';

export interface KernelInstallOptions {
  /** Install under `<prefix>/share/jupyter` (a virtualenv or conda prefix) instead of the user's data dir. */
  prefix?: string;
  /** Kernel name (default "hyperfeatures"). */
  name?: string;
  /** Where to look for tslab first (default: the current directory). */
  from?: string;
  /** Environment variables recorded in kernel.json. */
  env?: Record<string, string>;
}

/** The tslab package folder, or a ConfigError that says how to get it. */
export function findTslab(from = process.cwd()): string {
  const given = process.env.HYPERFEATURES_TSLAB;
  if (given) {
    if (existsSync(join(given, 'dist', 'main.js'))) return resolve(given);
    throw new ConfigError(`HYPERFEATURES_TSLAB=${given} is not a tslab package folder (no dist/main.js)`);
  }
  for (const base of [resolve(from), packageRoot()]) {
    try {
      const require = createRequire(join(base, 'noop.js'));
      return dirname(require.resolve('tslab/package.json'));
    } catch {
      // try the next place
    }
  }
  throw new ConfigError(
    `the notebook kernel needs tslab, which is not installed (looked from ${resolve(from)} and ${packageRoot()}): run \`npm install tslab\` in your project`,
  );
}

/** Jupyter's per-user data dir: $JUPYTER_DATA_DIR, else the platform default. */
export function jupyterDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JUPYTER_DATA_DIR) return env.JUPYTER_DATA_DIR;
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Jupyter');
  if (process.platform === 'win32') return join(env.APPDATA ?? homedir(), 'jupyter');
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'jupyter');
}

/** Write the kernel spec; returns the folder written. */
export async function installKernel(options: KernelInstallOptions = {}): Promise<string> {
  const name = options.name ?? 'hyperfeatures';
  if (!/^[a-zA-Z0-9._-]+$/.test(name))
    throw new ConfigError(`kernel name: expected letters, digits, ".", "_" or "-", got "${name}"`);
  const tslab = findTslab(options.from);
  const starter = join(packageRoot(), 'kernels', 'start-kernel.cjs');
  if (!existsSync(starter))
    throw new ConfigError(`the kernel starter is missing from this install: ${starter}`);
  const dataDir = options.prefix ? join(resolve(options.prefix), 'share', 'jupyter') : jupyterDataDir();
  const dir = join(dataDir, 'kernels', name);
  const env: Record<string, string> = { HYPERFEATURES_TSLAB: tslab, ...options.env };
  for (const k of ['HYPERFEATURES_CACHE', 'HF_HOME', 'HF_HUB_CACHE', 'HYPERFEATURES_DEVICE'])
    if (process.env[k] && !env[k]) env[k] = process.env[k]!;
  const spec = {
    argv: [process.execPath, starter, '{connection_file}'],
    display_name: 'TypeScript (hyperfeatures)',
    language: 'typescript',
    env,
    metadata: { debugger: false },
  };
  mkdirSync(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'kernel.json'), Buffer.from(JSON.stringify(spec, null, 2) + '\n'));
  return dir;
}
