// Loaded before every spec: built graphs go to a per-run temp cache, never the user's. When a
// top-level suite ends, every tempDir() made while it ran is removed and the cache emptied
// (tiny graphs rebuild in about a second); kept to the end, one run's checkpoints, graphs and
// features took 1.8 GB, and CI's disk can be smaller than that.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createdTempDirs } from './helpers.ts';

const cache = mkdtempSync(join(tmpdir(), 'hf-cache-'));
process.env.HYPERFEATURES_CACHE = cache;
process.env.HYPERFEATURES_LOG_LEVEL ??= 'warn';
const keep = Boolean(process.env.HYPERFEATURES_KEEP_TEST_FILES);

function removeSuiteFiles(from: number): void {
  if (keep) return;
  for (const d of createdTempDirs.splice(from)) rmSync(d, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache);
}

// root-level hooks (this file is loaded with --file, like a spec)
before(function () {
  // dirs made while the spec files loaded may serve several suites: they stay to the end
  const loaded = createdTempDirs.length;
  for (const suite of this.test!.parent!.suites) suite.afterAll(() => removeSuiteFiles(loaded));
});

after(() => {
  removeSuiteFiles(0);
  if (!keep) rmSync(cache, { recursive: true, force: true });
});
