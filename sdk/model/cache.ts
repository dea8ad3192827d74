/**
 * Built graphs are cached on disk, keyed by a hash of the builder version, component
 * config, build options and the weight files' identity (path, size, mtime), so the second
 * load skips building. Writes are atomic, and a manifest (file sizes, onnxruntime version) is
 * written last: an entry without one, with a truncated file, from another onnxruntime, or that
 * onnxruntime cannot load, is rebuilt instead of failing on every run.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { contentHash, fileStamp, verifyFile } from '../core/identity.ts';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ModelError } from '../core/errors.ts';
import { writeFileAtomic, writeFileAtomicSync } from '../core/fs.ts';
import { hyperfeaturesCacheDir } from '../core/paths.ts';
import { log } from '../core/logger.ts';
import type { GraphBuilder } from './onnx/graph.ts';
import { WeightStore } from './weights.ts';
import { toHalfPrecision, type HalfPrecision } from './onnx/precision.ts';
import { ORT_VERSION } from './runtime.ts';

/** Bump when any graph builder changes what it emits. */
export const BUILDER_VERSION = 6;
/** Graphs above this size keep weights as external data (protobuf limit is 2 GB). */
const EXTERNAL_DATA_BYTES = 64 * 1024 * 1024;

export function graphKey(
  component: string,
  config: unknown,
  options: unknown,
  weightFiles: readonly string[],
): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: BUILDER_VERSION, component, config, options }));
  // by content (hashed once per file version): a weight file replaced in place with the same
  // size and mtime is a new key, never the old graph
  for (const f of weightFiles) h.update(contentHash(f));
  return h.digest('hex').slice(0, 24);
}

export interface GraphRequest {
  /** Names the cache entry and the messages, e.g. "unet" or "vae-encoder". */
  component: string;
  /** The parsed config and build options: both go into the cache key. */
  config: unknown;
  options?: unknown;
  weightFiles: readonly string[];
  build: (weights: WeightStore) => GraphBuilder;
  /** Keep weights as float16 in the graph (cast to fp32 when used): half the memory. */
  weightDtype?: 'float' | 'float16';
  /** Make the built graph half precision (onnx/precision.ts); part of the cache key. */
  precision?: HalfPrecision;
  /** Weights this graph deliberately leaves out (not warned about). */
  ignoreUnused?: RegExp;
  cacheDir?: string;
}

/** Written into an entry folder before its build starts: the folder is the cache's own. */
export const ENTRY_MARKER = '.hyperfeatures-graph';
/** Written into the graphs folder when the cache creates it: the folder is a graph cache. */
export const ROOT_MARKER = '.hyperfeatures-graph-cache';
/** An entry folder's name: component and 24 hex digits of key. */
export const ENTRY_NAME = /^[a-z0-9][a-z0-9_-]*-[0-9a-f]{24}$/;

/** Mark the cache root and an entry folder as the cache's own (before anything is built). */
async function markOwned(root: string, dir: string, component: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(root, ROOT_MARKER)))
    await writeFileAtomic(join(root, ROOT_MARKER), Buffer.from('hyperfeatures graph cache\n'));
  await writeFileAtomic(
    join(dir, ENTRY_MARKER),
    Buffer.from(JSON.stringify({ component, started: new Date().toISOString() }) + '\n'),
  );
}

/** The manifest written beside a finished graph: what a complete entry looks like. */
interface GraphManifest {
  ort: string;
  /** BUILDER_VERSION that wrote it (absent in entries made before it was recorded). */
  builder?: number;
  files: Record<string, number>;
  /** Each file's stamp and sha256 at build time: a load verifies the bytes it is about to use. */
  stamps?: Record<string, ReturnType<typeof fileStamp>>;
}

/** Why a cache entry can never be used again, or undefined when it can (`cache prune --stale`). */
export function manifestProblem(dir: string): string | undefined {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) return 'no manifest (an interrupted build or an older version)';
  let m: GraphManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as GraphManifest;
  } catch {
    return 'unreadable manifest';
  }
  if (m.ort !== ORT_VERSION) return `built for onnxruntime ${m.ort}, this is ${ORT_VERSION}`;
  if (m.builder !== undefined && m.builder !== BUILDER_VERSION)
    return `written by graph builder ${m.builder}, this is ${BUILDER_VERSION}`;
  for (const [name, size] of Object.entries(m.files)) {
    const p = join(dir, name);
    if (!existsSync(p)) return `${name} is missing`;
    if (statSync(p).size !== size)
      return `${name} is ${statSync(p).size} bytes, expected ${size} (truncated?)`;
  }
  return undefined;
}

/**
 * Whether the graph files still hold the bytes that were built (a changed stamp means a hash),
 * or why not. Entries from before stamps were recorded are taken as they are.
 */
function verifyGraphFiles(dir: string): string | undefined {
  const file = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as GraphManifest;
  if (!m.stamps) return undefined;
  let restamped = false;
  for (const [name, recorded] of Object.entries(m.stamps)) {
    const v = verifyFile(join(dir, name), recorded);
    if (!v.ok) return `${name}: ${v.why}`;
    if (v.restamp) {
      m.stamps[name] = v.restamp;
      restamped = true;
    }
  }
  // the same bytes under a new stamp (a copied or restored cache): remembered, not hashed again
  if (restamped)
    try {
      writeFileAtomicSync(file, JSON.stringify(m));
    } catch {
      // a read-only cache: hashed again next time
    }
  return undefined;
}

async function graphFile(req: GraphRequest): Promise<{ path: string; cached: boolean; temporary?: string }> {
  const key = graphKey(
    req.component,
    req.config,
    {
      ...(req.options as object),
      weightDtype: req.weightDtype ?? 'float',
      ...(req.precision ? { precision: req.precision } : {}),
    },
    req.weightFiles,
  );
  const root = req.cacheDir ?? join(hyperfeaturesCacheDir(), 'graphs');
  const path = join(root, `${req.component}-${key}`, 'model.onnx');
  const dir = dirname(path);
  if (existsSync(path)) {
    const problem = manifestProblem(dir);
    const damaged = problem ? undefined : verifyGraphFiles(dir);
    if (!problem && !damaged) {
      log().debug(`${req.component}: using cached graph ${path}`);
      // the manifest's mtime is the entry's last use (`cache prune --unused-days`)
      try {
        const now = new Date();
        utimesSync(join(dir, 'manifest.json'), now, now);
      } catch {
        // a read-only cache still serves its graphs
      }
      return { path, cached: true };
    }
    log().warn(`${req.component}: cached graph ${dir} is not usable (${problem ?? damaged}); rebuilding it`);
    rmSync(dir, { recursive: true, force: true });
  }
  try {
    await markOwned(root, dir, req.component);
    await buildInto(req, dir);
    return { path, cached: false };
  } catch (e) {
    const code = cacheUnusable(e);
    if (!code) throw e;
    // a full, read-only or misplaced cache must not stop the work: build where there is room
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a read-only cache keeps what it had
    }
    const tmp = mkdtempSync(join(tmpdir(), `hyperfeatures-${req.component}-`));
    log().warn(
      `${req.component}: the graph cache ${root} cannot take this graph (${cacheProblem(code)}); building it in ${tmp} for this run only (set HYPERFEATURES_CACHE to a writable folder with room to keep it)`,
    );
    try {
      await buildInto(req, tmp);
    } catch (again) {
      rmSync(tmp, { recursive: true, force: true });
      throw again;
    }
    return { path: join(tmp, 'model.onnx'), cached: false, temporary: tmp };
  }
}

/** Errors that mean the cache folder cannot hold an entry (not that the build is wrong). */
// (ENOENT: a recursive mkdir on a read-only mount can report it)
const CACHE_UNUSABLE = [
  'ENOSPC',
  'EDQUOT',
  'EROFS',
  'EACCES',
  'EPERM',
  'ENOTDIR',
  'EEXIST',
  'EISDIR',
  'ENOENT',
];

/** A cache error code in words. */
export function cacheProblem(code: string): string {
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'no space left on its device';
  if (code === 'EROFS') return 'read-only filesystem';
  if (code === 'EACCES' || code === 'EPERM') return 'no write permission';
  if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR')
    return 'a file stands where a folder should be';
  if (code === 'ENOENT') return 'its folder cannot be created';
  return code;
}

/**
 * The error code when `e` (or an error it wraps) means the cache folder cannot hold an entry,
 * else undefined (a real failure). Shared by the graph and the feature cache.
 */
export function cacheUnusable(e: unknown): string | undefined {
  for (
    let x = e as { code?: unknown; cause?: unknown } | undefined, i = 0;
    x && i < 4;
    x = x.cause as typeof x, i++
  )
    if (typeof x.code === 'string' && /^E[A-Z]+$/.test(x.code))
      return CACHE_UNUSABLE.includes(x.code) ? x.code : undefined;
  return undefined;
}

/** Build the graph into `dir` (model.onnx, its data, and the manifest written last). */
async function buildInto(req: GraphRequest, dir: string): Promise<void> {
  const path = join(dir, 'model.onnx');
  const weights = await WeightStore.open([...req.weightFiles]);
  weights.weightDtype = req.weightDtype ?? 'float';
  try {
    const built = req.build(weights);
    weights.check(req.component, req.ignoreUnused);
    const g = req.precision ? toHalfPrecision(built, req.precision) : built;
    const bytes = g.initializers.reduce((a, i) => a + i.byteLength, 0);
    log().info(
      `${req.component}: building ONNX graph (${g.nodes.length} nodes, ${(bytes / 2 ** 20).toFixed(1)} MiB of weights)`,
    );
    await g.save(path, bytes > EXTERNAL_DATA_BYTES);
    const files: Record<string, number> = {};
    const stamps: GraphManifest['stamps'] = {};
    for (const f of ['model.onnx', 'model.onnx.data'])
      if (existsSync(join(dir, f))) {
        files[f] = statSync(join(dir, f)).size;
        stamps[f] = fileStamp(join(dir, f));
      }
    await writeFileAtomic(
      join(dir, 'manifest.json'),
      Buffer.from(
        JSON.stringify({ ort: ORT_VERSION, builder: BUILDER_VERSION, files, stamps } satisfies GraphManifest),
      ),
    );
  } finally {
    await weights.close();
  }
}

/**
 * The graph's session: from the cache when it has one, else built (weights validated, all
 * problems reported at once, and streamed into the file one at a time); a cache that cannot hold
 * it gets a temp folder removed once the session has loaded. A cached graph onnxruntime cannot
 * load (damaged bytes of the right size) is removed and rebuilt once, never an error forever.
 * @throws ModelError when weights do not match the config.
 */
export async function cachedSession<T>(req: GraphRequest, open: (path: string) => Promise<T>): Promise<T> {
  const { path, cached, temporary } = await graphFile(req);
  try {
    return await open(path);
  } catch (e) {
    if (!cached || !(e instanceof ModelError)) throw e;
    log().warn(`${req.component}: cached graph ${path} does not load (${e.message}); rebuilding it`);
    rmSync(dirname(path), { recursive: true, force: true });
    return open((await graphFile(req)).path);
  } finally {
    // a graph built outside the cache lives as long as its session's load (read in by then)
    if (temporary) rmSync(temporary, { recursive: true, force: true });
  }
}
