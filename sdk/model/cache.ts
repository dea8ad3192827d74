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

/** Bump when any graph builder changes what it emits. */
export const BUILDER_VERSION = 1;
/** Graphs above this size keep weights as external data (protobuf limit is 2 GB). */
const EXTERNAL_DATA_BYTES = 64 * 1024 * 1024;

export function graphKey(component: string, config: unknown, options: unknown, weightFiles: readonly string[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: BUILDER_VERSION, component, config, options }));
  for (const f of weightFiles) {
    const s = statSync(f);
    h.update(`${realpathSync(f)}:${s.size}:${s.mtimeMs}`);
  }
  return h.digest('hex').slice(0, 24);
}

/** Path of the cached graph for `key`, building and saving it first when absent. */
export async function cachedGraph(key: string, component: string, build: () => Promise<GraphBuilder>, cacheDir?: string): Promise<string> {
  const path = join(cacheDir ?? join(hyperfeaturesCacheDir(), 'graphs'), `${component}-${key}`, 'model.onnx');
  if (existsSync(path)) {
    log().debug(`${component}: using cached graph ${path}`);
    return path;
  }
  const g = await build();
  const bytes = g.initializers.reduce((a, i) => a + i.byteLength, 0);
  log().info(`${component}: building ONNX graph (${g.nodes.length} nodes, ${(bytes / 2 ** 20).toFixed(1)} MiB of weights)`);
  await g.save(path, bytes > EXTERNAL_DATA_BYTES);
  return path;
}
