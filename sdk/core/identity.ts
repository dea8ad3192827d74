/**
 * A file's identity by content: its sha256, computed once and kept (in the cache folder) with
 * the file's device, inode, size, mtime and ctime, and computed again whenever any of those
 * changes. A weight file replaced in place by another of the same size and mtime still changes
 * its ctime (no tool can set it back), so caches keyed by this never serve the old file's graph
 * or features.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from './fs.ts';
import { hyperfeaturesCacheDir } from './paths.ts';

interface Known {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  sha256: string;
}

const stamp = (s: Stats) => ({
  dev: s.dev,
  ino: s.ino,
  size: s.size,
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
});
const same = (a: Omit<Known, 'sha256'>, b: Omit<Known, 'sha256'>) =>
  a.dev === b.dev &&
  a.ino === b.ino &&
  a.size === b.size &&
  a.mtimeMs === b.mtimeMs &&
  a.ctimeMs === b.ctimeMs;

/** sha256 of a file, read in chunks (weights of several GB never sit in memory). */
export function sha256OfFile(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(16 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (!n) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function storePath(): string {
  return join(hyperfeaturesCacheDir(), 'file-identities.json');
}

let memo: { path: string; known: Record<string, Known> } | undefined;

function load(): Record<string, Known> {
  const path = storePath();
  if (memo?.path === path) return memo.known;
  let known: Record<string, Known> = {};
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      known = parsed as Record<string, Known>;
  } catch {
    // none yet, or damaged: hashes are recomputed
  }
  memo = { path, known };
  return known;
}

function save(known: Record<string, Known>): void {
  try {
    writeFileAtomicSync(storePath(), JSON.stringify(known));
  } catch {
    // a read-only or full cache: the hash is still right, only not remembered
  }
}

/** The file's content hash; hashed again only when its inode, size, mtime or ctime changed. */
export function contentHash(file: string): string {
  const real = realpathSync(file);
  const now = stamp(statSync(real));
  const known = load();
  const was = known[real];
  if (was && same(was, now)) return was.sha256;
  const sha256 = sha256OfFile(real);
  // a file rewritten while it was hashed is hashed again next time
  const after = stamp(statSync(real));
  if (same(after, now)) {
    // re-read: another process may have added entries meanwhile
    memo = undefined;
    const fresh = load();
    fresh[real] = { ...now, sha256 };
    save(fresh);
  }
  return sha256;
}

/** A recorded stamp and hash for a file we wrote (so a later check can skip hashing it). */
export function fileStamp(file: string): Known {
  return { ...stamp(statSync(file)), sha256: sha256OfFile(file) };
}

/**
 * Whether a file still holds what `recorded` says: the same stamp (no change since), or, when the
 * stamp moved (copied, touched, rewritten), the same content hash. Returns the fresh stamp when
 * the content matched under a new stamp (for the caller to record), or a reason it does not match.
 */
export function verifyFile(
  file: string,
  recorded: Known,
): { ok: true; restamp?: Known } | { ok: false; why: string } {
  const now = stamp(statSync(file));
  if (same(now, recorded)) return { ok: true };
  if (now.size !== recorded.size) return { ok: false, why: `${now.size} bytes, built as ${recorded.size}` };
  const sha256 = sha256OfFile(file);
  return sha256 === recorded.sha256
    ? { ok: true, restamp: { ...now, sha256 } }
    : { ok: false, why: 'its content changed since it was built (same size, other bytes)' };
}
