/**
 * Output locations checked before any compute: a folder (or a file's folder) must exist or be
 * creatable, be writable and not be a file; pseudo-filesystems (/proc, /sys) are refused (Node's
 * recursive mkdir spins on procfs); an output may not be one of the inputs. Each failure is a
 * ConfigError naming the path, raised in milliseconds instead of after minutes of work.
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  realpathSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from './errors.ts';

const PSEUDO_FS: Record<number, string> = { 0x9fa0: 'procfs', 0x62656572: 'sysfs', 0x1cd1: 'devpts' };

function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

/** Check that `dir` can hold outputs (creating it); `what` names the option. @throws ConfigError */
export function checkOutputDir(dir: string, what = '--out'): void {
  const abs = resolve(dir);
  const base = nearestExisting(abs);
  let st;
  try {
    st = statSync(base);
  } catch (e) {
    throw new ConfigError(`${what} ${dir}: cannot use it (${(e as NodeJS.ErrnoException).code})`, {
      cause: e,
    });
  }
  if (!st.isDirectory())
    throw new ConfigError(
      base === abs
        ? `${what} ${dir}: is a file, expected a folder`
        : `${what} ${dir}: ${base} is a file, so no folder can be made under it`,
    );
  try {
    const kind = PSEUDO_FS[statfsSync(base).type];
    if (kind)
      throw new ConfigError(
        `${what} ${dir}: ${base} is on ${kind}, a pseudo-filesystem; choose a real folder`,
      );
  } catch (e) {
    if (e instanceof ConfigError) throw e; // statfs unsupported elsewhere: fall through to the write test
  }
  try {
    accessSync(base, constants.W_OK);
    mkdirSync(abs, { recursive: true });
    const probe = resolve(abs, `.hf-write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? 'no write permission'
        : code === 'EROFS'
          ? 'read-only filesystem'
          : code === 'ENOSPC'
            ? 'no space left on the device'
            : (code ?? (e as Error).message);
    throw new ConfigError(`${what} ${dir}: cannot write there (${why})`, { cause: e });
  }
}

/** Check an output FILE path: not a folder, its folder usable. @throws ConfigError */
export function checkOutputFile(path: string, what = '--out'): void {
  if (existsSync(path) && statSync(path).isDirectory())
    throw new ConfigError(`${what} ${path}: is a folder, expected a file name`);
  checkOutputDir(dirname(resolve(path)), `${what} (folder of ${path})`);
}

/** A path with its links resolved where it exists (else just made absolute): two names, one file. */
export function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Refuse an output that is one of the inputs (same file, or the same folder). @throws ConfigError */
export function checkNotInput(out: string, inputs: readonly string[], what = '--out'): void {
  const o = realPath(out);
  for (const i of inputs) {
    const r = realPath(i);
    if (o === r)
      throw new ConfigError(
        `${what} ${out} is also an input (${i}); writing it would destroy the input: choose another output`,
      );
  }
}
