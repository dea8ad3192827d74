// Loaded before every spec: built graphs go to a per-run temp cache, never the user's; the
// cache and every tempDir() of the run are removed when mocha ends (they would fill the disk
// run after run: ~600 MB of graphs and features each).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createdTempDirs } from './helpers.ts';

const cache = mkdtempSync(join(tmpdir(), 'hf-cache-'));
process.env.HYPERFEATURES_CACHE = cache;
process.env.HYPERFEATURES_LOG_LEVEL ??= 'warn';

// a root-level hook (this file is loaded with --file, like a spec)
after(() => {
  if (process.env.HYPERFEATURES_KEEP_TEST_FILES) return;
  for (const d of [cache, ...createdTempDirs]) rmSync(d, { recursive: true, force: true });
});
