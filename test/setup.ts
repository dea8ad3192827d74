// Loaded before every spec: built graphs go to a per-run temp cache, never the user's.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.env.HYPERFEATURES_CACHE = mkdtempSync(join(tmpdir(), 'hf-cache-'));
process.env.HYPERFEATURES_LOG_LEVEL ??= 'warn';
