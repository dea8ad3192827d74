// The project's Jupyter kernel: tslab's kernel with the SDK resolvable as `hyperfeatures`.
// Started by kernel.json as: node --require tsx/cjs start-kernel.cjs <connection_file>
const path = require('node:path');
const Module = require('node:module');

process.env.NODE_PATH = [path.join(__dirname, 'node_path'), process.env.NODE_PATH]
  .filter(Boolean)
  .join(path.delimiter);
Module._initPaths();
require('tslab/dist/main.js').startKernel({ configPath: process.argv[2], enableFindLocal: false });
