// The hyperfeatures Jupyter kernel: tslab's TypeScript kernel, with the SDK's display helpers
// wired to it. kernel.json runs: node start-kernel.cjs <connection_file>, with HYPERFEATURES_TSLAB
// naming the tslab folder found by `hyperfeatures kernel install`.
const { tslabDir, prepareModulePaths } = require('./kernel-env.cjs');

prepareModulePaths();
const tslab = tslabDir();
// `hyperfeatures/notebook` looks here first, so it talks to this very tslab instance
globalThis.__hyperfeatures_jupyter = require(`${tslab}/dist/jupyter`);
require(`${tslab}/dist/main.js`).startKernel({ configPath: process.argv[2], enableFindLocal: false });
