/**
 * Atomic file writes: data goes to a temporary name beside the target and is renamed into
 * place only when complete, so an interrupted run or a full disk never leaves a
 * half-written file under the final name.
 */
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { open, rename, unlink, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DataError, HyperfeaturesError } from './errors.ts';

/** This machine, in temp names: on a shared filesystem only its own dead writers' temps are removed. */
const HOST = hostname().replace(/[^A-Za-z0-9]/g, '_') || 'host';
/** Temps of other machines are left alone unless this old (a writer alive elsewhere keeps touching its file). */
const FOREIGN_STALE_MS = 24 * 3600 * 1000;

export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tmp-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temp siblings of `path` left by a process that was killed mid-write (SIGKILL runs no
 * cleanup): `.<name>.tmp-<host>-<pid>-<hex>` of this machine whose process is gone and which
 * predate this one. On a shared filesystem (a feature cache used by many nodes) another
 * machine's temp is only removed after a day: its pid means nothing here.
 */
export async function removeStaleTemps(path: string): Promise<number> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.tmp-`;
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const file = join(dir, name);
    const st = await stat(file).catch(() => undefined);
    if (st && isDeadTemp(name, st.mtimeMs)) {
      await unlink(file).catch(() => undefined);
      removed++;
    }
  }
  return removed;
}

/** What a path that is not a readable regular file is, and that in words. */
export interface FileProblem {
  kind: 'missing' | 'dangling link' | 'link loop' | 'unreadable' | 'folder' | 'fifo' | 'socket' | 'device';
  why: string;
}

/**
 * Why `path` cannot be read as a regular file (so a read would fail late, or block forever on a
 * FIFO), or undefined when it can: not found, a dangling symbolic link, a symbolic-link loop, a
 * folder, a FIFO, a socket or a device.
 */
export function notARegularFile(path: string): FileProblem | undefined {
  let link;
  try {
    link = lstatSync(path);
  } catch (e) {
    return { kind: 'missing', why: `not found (${(e as NodeJS.ErrnoException).code})` };
  }
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { kind: 'link loop', why: 'a symbolic link loop' };
    if (code === 'ENOENT' && link.isSymbolicLink()) {
      let target = '?';
      try {
        target = readlinkSync(path);
      } catch {
        // keep '?'
      }
      return { kind: 'dangling link', why: `a dangling symbolic link (to ${target}, which does not exist)` };
    }
    return { kind: 'unreadable', why: `cannot be read (${code})` };
  }
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return { kind: 'folder', why: 'a folder, not a file' };
  if (st.isFIFO()) return { kind: 'fifo', why: 'a FIFO (named pipe), not a regular file' };
  if (st.isSocket()) return { kind: 'socket', why: 'a socket, not a regular file' };
  return { kind: 'device', why: 'a device, not a regular file' };
}

/**
 * A user's input file read whole, after checking it is a regular file: a FIFO would block the
 * read forever, a folder or a broken link would end in a stack trace.
 * @throws DataError `<path>: <what it is>`.
 */
export function readInputFile(path: string): Buffer;
export function readInputFile(path: string, encoding: 'utf8'): string;
export function readInputFile(path: string, encoding?: 'utf8'): Buffer | string {
  const problem = notARegularFile(path);
  if (problem) throw new DataError(`${path}: ${problem.why}`);
  return encoding ? readFileSync(path, encoding) : readFileSync(path);
}

/**
 * Whether a file name is an atomic write's temp (`.<name>.tmp-<host>-<pid>-<hex>`) whose writer
 * is gone: this machine's dead process that predates this one, or another machine's after a day.
 */
export function isDeadTemp(name: string, mtimeMs: number): boolean {
  const m = /^\..+\.tmp-(.*)$/.exec(name);
  if (!m) return false;
  const parts = m[1].split('-');
  const pid = Number(parts[parts.length - 2]);
  if (parts.length < 2 || !Number.isInteger(pid)) return false;
  const host = parts.slice(0, -2).join('-');
  const local = host === HOST || parts.length === 2; // 2 parts: written before hosts were named
  const started = Date.now() - process.uptime() * 1000;
  return local
    ? pid !== process.pid && !alive(pid) && mtimeMs < started
    : Date.now() - mtimeMs > FOREIGN_STALE_MS;
}

/** Atomic write where `produce` calls `write` chunk by chunk (large files never sit in memory). */
export async function writeFileAtomicStreaming(
  path: string,
  produce: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
  needed?: number,
): Promise<void> {
  const tmp = tempPathFor(path);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let total = 0;
  try {
    await mkdir(dirname(path), { recursive: true });
    await removeStaleTemps(path);
    handle = await open(tmp, 'w');
    const h = handle;
    await produce(async (chunk) => {
      let written = 0;
      while (written < chunk.byteLength) {
        const { bytesWritten } = await h.write(chunk, written, chunk.byteLength - written);
        written += bytesWritten;
        total += bytesWritten;
      }
    });
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code && !(e instanceof HyperfeaturesError)) {
      const why =
        code === 'ENOSPC' || code === 'EDQUOT'
          ? `no space left on the device of ${dirname(path)}: ${needed !== undefined ? `needs ${needed} bytes` : `${total} bytes written when it filled`}, ${freeBytes(dirname(path))} free`
          : code === 'EROFS'
            ? 'read-only filesystem'
            : code === 'EACCES' || code === 'EPERM'
              ? 'no write permission'
              : code === 'ENOTDIR' || code === 'EEXIST'
                ? 'a file stands where a folder should be'
                : code;
      throw new DataError(`cannot write ${path} (${why}); the previous file, if any, is unchanged`, {
        cause: e,
      });
    }
    throw e;
  }
}

/** Free bytes on the filesystem holding `dir` (nearest existing folder), as text. */
function freeBytes(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    try {
      const s = statfsSync(d);
      return `${s.bavail * s.bsize}`;
    } catch {
      if (dirname(d) === d) return 'unknown';
    }
  }
}

/**
 * The synchronous twin of writeFileAtomic for small bookkeeping files written from synchronous
 * code (hash stamps): temp file, rename; the temp is removed if the write fails.
 * @throws the write's error (callers that may run on a read-only cache catch it).
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(path);
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Write all chunks to `path` atomically (temp file, fsync, rename). */
export async function writeFileAtomic(
  path: string,
  chunks: Uint8Array | readonly Uint8Array[],
): Promise<void> {
  const list = chunks instanceof Uint8Array ? [chunks] : chunks;
  await writeFileAtomicStreaming(
    path,
    async (write) => {
      for (const chunk of list) await write(chunk);
    },
    list.reduce((a, c) => a + c.byteLength, 0),
  );
}

/** Bytes of every file under a folder, recursively. */
export function folderBytes(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((a, e) => a + statSync(join(e.parentPath, e.name)).size, 0);
}
