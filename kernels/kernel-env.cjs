// Shared by the kernel starter and the headless runner: find tslab, and let cells
// `require('hyperfeatures')` from any folder by putting this package's node_modules folder on
// NODE_PATH (the installed package's parent, or the repository's own self-link).
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const ROOT = path.join(__dirname, '..');

function tslabDir() {
  const candidates = [process.env.HYPERFEATURES_TSLAB, process.cwd(), ROOT].filter(Boolean);
  for (const c of candidates) {
    if (fs.existsSync(path.join(c, 'dist', 'main.js')) && path.basename(c) === 'tslab') return c;
    try {
      return path.dirname(require.resolve('tslab/package.json', { paths: [c] }));
    } catch {
      // next
    }
  }
  process.stderr.write(
    'hyperfeatures kernel: tslab is not installed. Run `npm install tslab` in your project, then `npx hyperfeatures kernel install`.\n',
  );
  process.exit(2);
}

function prepareModulePaths() {
  const parent = path.dirname(ROOT);
  const nodeModules = path.basename(parent) === 'node_modules' ? parent : path.join(ROOT, 'node_modules');
  process.env.NODE_PATH = [nodeModules, process.env.NODE_PATH].filter(Boolean).join(path.delimiter);
  Module._initPaths();
}

module.exports = { tslabDir, prepareModulePaths };
