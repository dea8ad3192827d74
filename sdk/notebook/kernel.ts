/**
 * The notebook kernel: tslab's TypeScript kernel started by `kernels/start-kernel.cjs` so the
 * SDK's display helpers reach Jupyter. tslab is an optional peer dependency: it is found at
 * install time ($HYPERFEATURES_TSLAB, else the current project, else beside this package) and
 * its path is written into kernel.json, so the kernel runs the same tslab every time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';
import { packageRoot, resolveFrom } from '../core/package-root.ts';

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
  const found = resolveFrom([resolve(from), packageRoot()], 'tslab/package.json');
  if (found) return dirname(found);
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

/** Deno's first release with `deno jupyter`; Deno 2 is needed for npm packages with Node-API addons from node_modules. */
export const DENO_MIN_VERSION = '2.0.0';

const versionNumber = (v: string) => v.split('.').map(Number);
const atLeast = (v: string, min: string) => {
  const [a, b] = [versionNumber(v), versionNumber(min)];
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
};

export interface DenoStatus {
  /** The deno executable found, or undefined. */
  path?: string;
  version?: string;
  /** Whether it can run our notebooks (`deno jupyter`, npm packages with native addons). */
  ok: boolean;
  detail: string;
}

/** The deno executable: $DENO, else this project's node_modules/.bin, else PATH. */
function findDeno(from: string): string | undefined {
  if (process.env.DENO) return process.env.DENO;
  for (const base of [resolve(from), packageRoot()]) {
    const local = join(base, 'node_modules', '.bin', process.platform === 'win32' ? 'deno.cmd' : 'deno');
    if (existsSync(local)) return local;
  }
  for (const dir of (process.env.PATH ?? '').split(process.platform === 'win32' ? ';' : ':')) {
    const p = join(dir, process.platform === 'win32' ? 'deno.exe' : 'deno');
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Deno as a notebook kernel: found, new enough, and able to load the native addons
 * (onnxruntime-node, sharp) from `from`'s node_modules; the detail says what to do when not.
 */
export function denoStatus(from = process.cwd(), deno = findDeno(from)): DenoStatus {
  if (!deno)
    return {
      ok: false,
      detail: `not found (install it: \`npm install --save-dev deno\` or https://deno.land; Deno >= ${DENO_MIN_VERSION})`,
    };
  const run = (args: string[]) =>
    spawnSync(deno, args, {
      cwd: from,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
  const v = run(['--version']);
  const version = /deno (\d+\.\d+\.\d+)/.exec(v.stdout ?? '')?.[1];
  if (!version)
    return {
      path: deno,
      ok: false,
      detail: `${deno} does not run (${(v.stderr || String(v.error)).trim().slice(0, 200)})`,
    };
  if (!atLeast(version, DENO_MIN_VERSION))
    return {
      path: deno,
      version,
      ok: false,
      detail: `deno ${version} is too old: \`deno jupyter\` with npm packages that load native addons needs Deno >= ${DENO_MIN_VERSION} (\`deno upgrade\`)`,
    };
  // the addons as a notebook cell loads them: from the project's node_modules
  const probe = run([
    'eval',
    "import { createRequire } from 'node:module'; const r = createRequire(Deno.cwd() + '/'); for (const m of ['onnxruntime-node', 'sharp']) { try { r(m); } catch (e) { console.log(m + ': ' + String(e.message).split('\\n')[0]); } }",
  ]);
  const missing = (probe.stdout ?? '').trim();
  if (probe.status !== 0 || missing)
    return {
      path: deno,
      version,
      ok: false,
      detail: `deno ${version}, but the native addons do not load from ${join(resolve(from), 'node_modules')}: ${(missing || probe.stderr).trim().split('\n').join('; ').slice(0, 300)}. Run \`npm install hyperfeatures\` there (it brings onnxruntime-node and sharp with its platform package @img/sharp-${process.platform}-${process.arch}), then start Deno's kernel from that folder`,
    };
  return {
    path: deno,
    version,
    ok: true,
    detail: `deno ${version} (${deno}): runs the notebooks (\`deno jupyter --install\` adds its kernel)`,
  };
}

/** The kernels this machine has for our notebooks, one line each (for `hyperfeatures env`). */
export function kernelReport(from = process.cwd()): string[] {
  let tslab: string;
  try {
    tslab = `tslab ${findTslab(from)} (\`npx hyperfeatures kernel install\`)`;
  } catch {
    tslab = 'tslab not installed (`npm install tslab`, then `npx hyperfeatures kernel install`)';
  }
  const installed = ['hyperfeatures', 'deno']
    .filter((k) => existsSync(join(jupyterDataDir(), 'kernels', k, 'kernel.json')))
    .map((k) => `"${k}"`);
  const deno = denoStatus(from);
  return [
    `  ${tslab}`,
    `  deno  ${deno.ok ? deno.detail : deno.path ? deno.detail : `deno ${deno.detail}`}`,
    `  Jupyter kernel specs in ${jupyterDataDir()}: ${installed.join(', ') || 'none of ours'}`,
  ];
}
