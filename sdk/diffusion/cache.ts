/**
 * On-disk feature cache: 50 UNet calls per image are worth keeping. Entries are
 * FeatureStack safetensors files named by a hash of (model: every component's config and
 * weights and the tokenizer files; input content; settings). Each entry carries a sha256 of its
 * data; a damaged or truncated entry is detected on read, removed and rebuilt, never returned.
 * Writes are atomic (temp + rename), so concurrent readers never see a partial entry.
 */
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hyperfeaturesCacheDir } from '../core/paths.ts';
import { log } from '../core/logger.ts';
import { cacheProblem, cacheUnusable } from '../model/cache.ts';
import { FeatureStack } from './feature-stack.ts';

export class FeatureCache {
  readonly dir: string;
  /** Set when the folder could not take an entry: the rest of the run computes uncached. */
  private disabled = false;

  constructor(dir?: string) {
    this.dir = dir ?? join(hyperfeaturesCacheDir(), 'features');
  }

  static key(modelHash: string, contentHash: string, settings: unknown): string {
    return createHash('sha256')
      .update(JSON.stringify({ modelHash, contentHash, settings }))
      .digest('hex')
      .slice(0, 32);
  }

  path(key: string): string {
    return join(this.dir, `${key}.safetensors`);
  }

  async get(key: string): Promise<FeatureStack | undefined> {
    const p = this.path(key);
    if (!existsSync(p)) {
      return undefined;
    }
    try {
      const stack = await FeatureStack.load(p, { verify: true });
      return stack;
    } catch (e) {
      log().warn(
        `feature cache entry ${p} is unreadable (${(e as Error).message}); removing it and recomputing`,
      );
      // named as our entry, so ours: a file or (damaged) a folder standing where one should be
      rmSync(p, { recursive: true, force: true });
      return undefined;
    }
  }

  /**
   * Keep a stack; a cache that cannot take it (full, read-only, not a folder) is warned about
   * once and the work goes on uncached, its results unchanged.
   */
  async put(key: string, stack: FeatureStack): Promise<void> {
    if (this.disabled) return;
    try {
      await stack.save(this.path(key));
    } catch (e) {
      const code = cacheUnusable(e);
      if (!code) throw e;
      this.disabled = true;
      log().warn(
        `the feature cache ${this.dir} cannot take more entries (${cacheProblem(code)}); computing without caching for the rest of this run`,
      );
    }
  }
}
