/**
 * `npm run kernel:install [-- --prefix <dir>]`: install the "TypeScript (hyperfeatures)"
 * kernel spec into the user's Jupyter data dir ($JUPYTER_DATA_DIR or ~/.local/share/jupyter),
 * or under <prefix>/share/jupyter. Needs no Python: it only writes kernel.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { values } = parseArgs({ options: { prefix: { type: 'string' }, name: { type: 'string' } } });
const name = values.name ?? 'hyperfeatures';
const dataDir = values.prefix
  ? join(resolve(values.prefix), 'share', 'jupyter')
  : (process.env.JUPYTER_DATA_DIR ?? join(homedir(), '.local', 'share', 'jupyter'));
const dir = join(dataDir, 'kernels', name);
const spec = {
  argv: [
    process.execPath,
    '--require',
    require.resolve('tsx/cjs'),
    join(HERE, 'start-kernel.cjs'),
    '{connection_file}',
  ],
  display_name: 'TypeScript (hyperfeatures)',
  language: 'typescript',
  env: {
    ...(process.env.HYPERFEATURES_CACHE ? { HYPERFEATURES_CACHE: process.env.HYPERFEATURES_CACHE } : {}),
    ...(process.env.HF_HOME ? { HF_HOME: process.env.HF_HOME } : {}),
    ...(process.env.HYPERFEATURES_DEVICE ? { HYPERFEATURES_DEVICE: process.env.HYPERFEATURES_DEVICE } : {}),
  },
  metadata: { debugger: false },
};
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'kernel.json'), JSON.stringify(spec, null, 2) + '\n');
process.stdout.write(`installed kernel "${name}" (TypeScript (hyperfeatures)) in ${dir}\n`);
