/**
 * `hyperfeatures kernel install|run`: the notebook kernel from an installed package.
 * install writes the Jupyter kernel spec; run executes notebooks headless (no Jupyter needed),
 * failing on the first cell error, type errors included.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../core/errors.ts';
import { checkNotebooks, formatNotebookDiagnostic } from '../../notebook/check.ts';
import { packageRoot } from '../../core/package-root.ts';
import { findTslab, installKernel } from '../../notebook/kernel.ts';
import { exportNotebookHtml } from '../../notebook/html.ts';
import { checkOutputFile } from '../../core/outputs.ts';
import { parse } from '../args.ts';
import type { Command } from '../main.ts';

export const kernel: Command = {
  summary:
    'install the TypeScript notebook kernel (needs tslab), run notebooks headless, or type-check notebooks for any kernel',
  usage:
    'hyperfeatures kernel install [--prefix <dir>] [--name hyperfeatures]\n       hyperfeatures kernel run [--write] <notebook.ipynb>...\n       hyperfeatures kernel check <notebook.ipynb>...  (type-check the code cells in order as one program, for tslab and Deno notebooks)\n       hyperfeatures kernel html <notebook.ipynb> [--out page.html]  (self-contained page with live Vega-Lite charts; needs jupyter-nbconvert)',
  async run(args) {
    const [verb, ...rest] = args;
    if (verb === 'install') {
      const { values, positionals } = parse(
        rest,
        { prefix: { type: 'string' }, name: { type: 'string' } },
        false,
      );
      void positionals;
      const dir = await installKernel({ prefix: values.prefix, name: values.name });
      process.stdout.write(
        `installed kernel "${values.name ?? 'hyperfeatures'}" (TypeScript (hyperfeatures)) in ${dir}\n`,
      );
      return;
    }
    if (verb === 'run') {
      const { values, positionals } = parse(rest, { write: { type: 'boolean' } });
      if (positionals.length === 0)
        throw new ConfigError('kernel run: expected one or more .ipynb files, got none');
      for (const p of positionals) {
        if (!p.endsWith('.ipynb')) throw new ConfigError(`kernel run: expected .ipynb files, got "${p}"`);
        if (!existsSync(p)) throw new ConfigError(`kernel run: no such notebook: ${p}`);
      }
      const tslab = findTslab();
      const runner = join(packageRoot(), 'kernels', 'run-notebooks.cjs');
      const code = await new Promise<number>((res, rej) => {
        const child = spawn(
          process.execPath,
          [runner, ...(values.write ? ['--write'] : []), ...positionals],
          {
            stdio: 'inherit',
            env: { ...process.env, HYPERFEATURES_TSLAB: tslab },
          },
        );
        child.on('error', rej);
        child.on('exit', (c) => res(c ?? 1));
      });
      if (code !== 0)
        throw new ConfigError(`kernel run: a notebook failed (exit code ${code}); see the output above`);
      return;
    }
    if (verb === 'check') {
      const { positionals } = parse(rest, {});
      const found = checkNotebooks(positionals);
      for (const d of found) process.stderr.write(formatNotebookDiagnostic(d) + '\n');
      const files = new Set(found.map((d) => d.notebook)).size;
      if (found.length)
        throw new DataError(
          `kernel check: ${found.length} error(s) in ${files} of ${positionals.length} notebook(s)`,
        );
      process.stdout.write(`kernel check: ${positionals.length} notebook(s), no type errors\n`);
      return;
    }
    if (verb === 'html') {
      const { values, positionals } = parse(rest, { out: { type: 'string' } });
      if (positionals.length !== 1 || !positionals[0].endsWith('.ipynb'))
        throw new ConfigError(`kernel html: expected one .ipynb file, got ${JSON.stringify(positionals)}`);
      if (!existsSync(positionals[0]))
        throw new ConfigError(`kernel html: no such notebook: ${positionals[0]}`);
      const out = values.out ?? positionals[0].replace(/\.ipynb$/, '.html');
      checkOutputFile(out);
      const { charts } = await exportNotebookHtml(positionals[0], out);
      process.stdout.write(`wrote ${out} (${charts} live Vega-Lite chart(s))\n`);
      return;
    }
    throw new ConfigError(
      `kernel: expected "install", "run", "check" or "html", got ${verb === undefined ? 'nothing' : `"${verb}"`}`,
    );
  },
};
