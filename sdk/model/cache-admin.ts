/**
 * What the graph cache holds and removing what it no longer needs (`hyperfeatures cache`).
 * Entries are never evicted on their own: an SD-sized UNet entry with its optimized model is
 * ~6.5 GB, and each new onnxruntime or graph builder version leaves the old entries behind.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { folderBytes } from '../core/fs.ts';
import { hyperfeaturesCacheDir } from '../core/paths.ts';
import { manifestProblem } from './cache.ts';

export interface GraphCacheEntry {
  /** Folder name: component and key, e.g. "unet-1462026f1fd1815acdff379d". */
  name: string;
  dir: string;
  bytes: number;
  /** Last load that used it (the manifest's mtime), else when it was last written. */
  lastUsed: Date;
  /** Why it can never be used again (other onnxruntime, other builder, incomplete), or undefined. */
  stale?: string;
}

/** An entry without a manifest younger than this may be a build in progress: never pruned. */
const BUILDING_GRACE_MS = 60 * 60 * 1000;

export function graphCacheDir(): string {
  return join(hyperfeaturesCacheDir(), 'graphs');
}

/** Every entry of a graph cache (default: the user's), oldest use first. */
export function listGraphCache(root = graphCacheDir()): GraphCacheEntry[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => {
      const dir = join(root, e.name);
      const manifest = join(dir, 'manifest.json');
      const lastUsed = statSync(existsSync(manifest) ? manifest : dir).mtime;
      return { name: e.name, dir, bytes: folderBytes(dir), lastUsed, stale: manifestProblem(dir) };
    })
    .sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
}

export interface PruneOptions {
  /** Remove entries that can never be used again. */
  stale?: boolean;
  /** Remove entries no load has used for this many days. */
  unusedDays?: number;
  /** Only report what would be removed. */
  dryRun?: boolean;
  root?: string;
  now?: Date;
}

/**
 * Remove the entries that match (stale, or unused for `unusedDays`); returns them.
 * @throws ConfigError when no criterion is given or unusedDays is not a positive number.
 */
export function pruneGraphCache(options: PruneOptions): GraphCacheEntry[] {
  const { stale, unusedDays, dryRun } = options;
  if (!stale && unusedDays === undefined)
    throw new ConfigError('cache prune: expected --stale and/or --unused-days N, got neither');
  if (unusedDays !== undefined && !(Number.isFinite(unusedDays) && unusedDays > 0))
    throw new ConfigError(`cache prune: --unused-days expected a positive number of days, got ${unusedDays}`);
  const now = (options.now ?? new Date()).getTime();
  const removed = listGraphCache(options.root).filter((e) => {
    const age = now - e.lastUsed.getTime();
    const building = !existsSync(join(e.dir, 'manifest.json')) && age < BUILDING_GRACE_MS;
    if (building) return false;
    return (stale && e.stale !== undefined) || (unusedDays !== undefined && age > unusedDays * 86_400_000);
  });
  if (!dryRun) for (const e of removed) rmSync(e.dir, { recursive: true, force: true });
  return removed;
}
