// Execute notebooks headless with tslab's executor (no Python, no Jupyter): every code cell in
// order, one fresh kernel state per notebook, failing on the first cell error. `--write`
// stores the outputs (stream, display data, errors) in the .ipynb, atomically.
// Type errors in a cell fail it, as in the kernel.
// usage: hyperfeatures kernel run [--write] a.ipynb ...  (or node kernels/run-notebooks.cjs ...)
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { tslabDir, prepareModulePaths } = require('./kernel-env.cjs');

prepareModulePaths();
const tslab = tslabDir();
const { createExecutor } = require(`${tslab}/dist/executor`);
const { createConverter } = require(`${tslab}/dist/converter`);
const jupyter = require(`${tslab}/dist/jupyter`);
globalThis.__hyperfeatures_jupyter = jupyter;

async function runNotebook(file, write) {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
  let node, browser;
  const convs = {
    get node() {
      return (node ??= createConverter({ isJS: false, isBrowser: false }));
    },
    get browser() {
      return (browser ??= createConverter({ isJS: false, isBrowser: true }));
    },
    close() {
      node?.close();
      browser?.close();
    },
  };
  let outputs = [];
  const stream =
    (name) =>
    (...args) =>
      outputs.push({ output_type: 'stream', name, text: [util.format(...args) + '\n'] });
  jupyter.lastWriteDisplayData = (data) =>
    outputs.push({ output_type: 'display_data', data: data.data, metadata: data.metadata ?? {} });
  const cwd = process.cwd();
  process.chdir(path.dirname(path.resolve(file)));
  const executor = createExecutor(process.cwd(), convs, { log: stream('stdout'), error: stream('stderr') });
  const origLog = console.log;
  const origErr = console.error;
  let count = 0;
  try {
    for (const [i, cell] of nb.cells.entries()) {
      if (cell.cell_type !== 'code') continue;
      outputs = [];
      console.log = stream('stdout');
      console.error = stream('stderr');
      const started = Date.now();
      let ok;
      try {
        ok = await executor.execute(Array.isArray(cell.source) ? cell.source.join('') : cell.source);
      } catch (e) {
        outputs.push({
          output_type: 'error',
          ename: e.name,
          evalue: e.message,
          traceback: [String(e.stack)],
        });
        ok = false;
      } finally {
        console.log = origLog;
        console.error = origErr;
      }
      cell.outputs = outputs;
      cell.execution_count = ++count;
      process.stderr.write(
        `  ${path.basename(file)} cell ${i} ${ok ? 'ok' : 'FAILED'} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
      );
      if (!ok) {
        const text = outputs
          .map((o) => (o.text ?? [o.evalue]).join(''))
          .join('')
          .slice(-2000);
        throw new Error(`${file}: cell ${i} failed:\n${text}`);
      }
    }
  } finally {
    executor.close();
    convs.close();
    process.chdir(cwd);
  }
  if (write) {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(nb, null, 1) + '\n');
    fs.renameSync(tmp, file);
  }
}

(async () => {
  const args = process.argv.slice(2);
  const write = args.includes('--write');
  const files = args.filter((a) => a !== '--write');
  for (const f of files) {
    process.stderr.write(`notebook ${f}\n`);
    await runNotebook(f, write);
  }
})().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  },
);
