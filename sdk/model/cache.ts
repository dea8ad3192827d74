/**
 * Built graphs are cached on disk, keyed by a hash of the builder version, component
 * config, build options and the weight files' identity (path, size, mtime), so the second
 * load skips building. Writes are atomic, so an interrupted build never leaves a graph
 * that looks complete.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { hyperfeaturesCacheDir } from '../core/paths.ts';
import { log } from '../core/logger.ts';
import type { GraphBuilder } from './onnx/graph.ts';
import { WeightStore } from './weights.ts';

/** Bump when any graph builder changes what it emits. */
export const BUILDER_VERSION = 2;
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
  for (const f of weightFiles) {
    const s = statSync(f);
    h.update(`${realpathSync(f)}:${s.size}:${s.mtimeMs}`);
  }
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
  /** Weights this graph deliberately leaves out (not warned about). */
  ignoreUnused?: RegExp;
  cacheDir?: string;
}

/**
 * Path of the graph for a component, building it when the cache has none: weights are
 * validated (all problems reported at once) and streamed into the file one at a time.
 * @throws ModelError when weights do not match the config.
 */
export async function cachedGraph(req: GraphRequest): Promise<string> {
  const key = graphKey(
    req.component,
    req.config,
    { ...(req.options as object), weightDtype: req.weightDtype ?? 'float' },
    req.weightFiles,
  );
  const path = join(
    req.cacheDir ?? join(hyperfeaturesCacheDir(), 'graphs'),
    `${req.component}-${key}`,
    'model.onnx',
  );
  if (existsSync(path)) {
    log().debug(`${req.component}: using cached graph ${path}`);
    return path;
  }
  const weights = await WeightStore.open([...req.weightFiles]);
  weights.weightDtype = req.weightDtype ?? 'float';
  try {
    const g = req.build(weights);
    weights.check(req.component, req.ignoreUnused);
    const bytes = g.initializers.reduce((a, i) => a + i.byteLength, 0);
    log().info(
      `${req.component}: building ONNX graph (${g.nodes.length} nodes, ${(bytes / 2 ** 20).toFixed(1)} MiB of weights)`,
    );
    await g.save(path, bytes > EXTERNAL_DATA_BYTES);
  } finally {
    await weights.close();
  }
  return path;
}
