/**
 * What the graph cache holds and removing what it no longer needs (`hyperfeatures cache`).
 * Entries are never evicted on their own: an SD-sized UNet entry with its optimized model is
 * ~6.5 GB, and each new onnxruntime or graph builder version leaves the old entries behind.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { folderBytes, isDeadTemp } from '../core/fs.ts';
import { hyperfeaturesCacheDir } from '../core/paths.ts';
import { ENTRY_MARKER, ENTRY_NAME, ROOT_MARKER, manifestProblem } from './cache.ts';

export interface GraphCacheEntry {
  /** Folder name: component and key, e.g. "unet-1462026f1fd1815acdff379d". */
  name: string;
  dir: string;
  bytes: number;
  /** Last load that used it (the manifest's mtime), else when it was last written. */
  lastUsed: Date;
  /** Why it can never be used again (other onnxruntime, other builder, incomplete), or undefined. */
  stale?: string;
  /** Temp files of interrupted writes whose writer is gone (removed by `prune --stale`). */
  leftovers: string[];
}

/** An entry without a manifest younger than this may be a build in progress: never pruned. */
const BUILDING_GRACE_MS = 60 * 60 * 1000;

export function graphCacheDir(): string {
  return join(hyperfeaturesCacheDir(), 'graphs');
}

/** Whether a folder is an entry the cache made: its name, and its marker (or, before markers, its manifest). */
function ownEntry(dir: string, name: string): boolean {
  if (!ENTRY_NAME.test(name)) return false;
  if (existsSync(join(dir, ENTRY_MARKER))) return true;
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      ort?: unknown;
      files?: unknown;
    };
    return typeof m.ort === 'string' && typeof m.files === 'object' && m.files !== null;
  } catch {
    return false;
  }
}

export interface GraphCacheFolder {
  root: string;
  /** The cache's own entries, oldest use first. */
  entries: GraphCacheEntry[];
  /** Everything else in the folder: never listed as entries, never removed. */
  foreign: string[];
}

/**
 * A graph cache folder read: the cache's own entries and what is not its own.
 * @throws ConfigError when `root` is a file, or a folder that is not a graph cache (no marker,
 *   no entry of ours, not empty), naming what it holds and the folder that would be.
 */
export function readGraphCache(root = graphCacheDir()): GraphCacheFolder {
  if (!existsSync(root)) return { root, entries: [], foreign: [] };
  let st;
  try {
    st = statSync(root);
  } catch (e) {
    throw new ConfigError(`--dir ${root}: cannot be read (${(e as NodeJS.ErrnoException).code})`);
  }
  if (!st.isDirectory()) throw new ConfigError(`--dir ${root}: a file, not a graph cache folder`);
  let names: import('node:fs').Dirent[];
  try {
    names = readdirSync(root, { withFileTypes: true });
  } catch (e) {
    throw new ConfigError(`--dir ${root}: cannot be listed (${(e as NodeJS.ErrnoException).code})`);
  }
  const entries: GraphCacheEntry[] = [];
  const foreign: string[] = [];
  for (const e of names) {
    if (e.name === ROOT_MARKER) continue;
    const dir = join(root, e.name);
    if (!e.isDirectory() || e.isSymbolicLink() || !ownEntry(dir, e.name)) {
      foreign.push(e.name);
      continue;
    }
    const manifest = join(dir, 'manifest.json');
    const lastUsed = statSync(existsSync(manifest) ? manifest : dir).mtime;
    const leftovers = readdirSync(dir).filter((f) => isDeadTemp(f, statSync(join(dir, f)).mtimeMs));
    entries.push({
      name: e.name,
      dir,
      bytes: folderBytes(dir),
      lastUsed,
      stale: manifestProblem(dir),
      leftovers,
    });
  }
  const marked = existsSync(join(root, ROOT_MARKER));
  if (!marked && !entries.length && foreign.length) {
    const graphs = join(root, 'graphs');
    throw new ConfigError(
      `--dir ${root} is not a hyperfeatures graph cache (no ${ROOT_MARKER} marker and none of its ${foreign.length} item(s) is a cache entry); nothing was touched.${existsSync(join(graphs, ROOT_MARKER)) || (existsSync(graphs) && statSync(graphs).isDirectory()) ? ` The graph cache there is ${graphs}.` : ''} The default is ${graphCacheDir()}`,
    );
  }
  entries.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  return { root, entries, foreign };
}

/** Every entry of a graph cache (default: the user's), oldest use first. */
export function listGraphCache(root = graphCacheDir()): GraphCacheEntry[] {
  return readGraphCache(root).entries;
}

export interface PruneOptions {
  /** Remove entries that can never be used again, and interrupted writes' temp files. */
  stale?: boolean;
  /** Remove entries no load has used for this many days. */
  unusedDays?: number;
  /** Only report what would be removed. */
  dryRun?: boolean;
  root?: string;
  now?: Date;
}

/**
 * Remove the cache's own entries that match (stale, or unused for `unusedDays`), and with
 * `stale` the dead temp files inside the rest; returns the entries removed. Nothing that is not
 * the cache's own is ever removed.
 * @throws ConfigError when no criterion is given, unusedDays is not a positive number, or the
 *   folder is not a graph cache.
 */
export function pruneGraphCache(options: PruneOptions): GraphCacheEntry[] {
  const { stale, unusedDays, dryRun } = options;
  if (!stale && unusedDays === undefined)
    throw new ConfigError('cache prune: expected --stale and/or --unused-days N, got neither');
  if (unusedDays !== undefined && !(Number.isFinite(unusedDays) && unusedDays > 0))
    throw new ConfigError(`cache prune: --unused-days expected a positive number of days, got ${unusedDays}`);
  const now = (options.now ?? new Date()).getTime();
  const { entries } = readGraphCache(options.root);
  const removed = entries.filter((e) => {
    const age = now - e.lastUsed.getTime();
    const building = !existsSync(join(e.dir, 'manifest.json')) && age < BUILDING_GRACE_MS;
    if (building) return false;
    return (stale && e.stale !== undefined) || (unusedDays !== undefined && age > unusedDays * 86_400_000);
  });
  if (!dryRun) {
    for (const e of removed) rmSync(e.dir, { recursive: true, force: true });
    if (stale)
      for (const e of entries)
        if (!removed.includes(e)) for (const f of e.leftovers) rmSync(join(e.dir, f), { force: true });
  }
  return removed;
}
