/**
 * Notebooks for any kernel: `kernel check` type-checks cells in order as one program (every
 * committed notebook passes; a deliberate error is reported by cell and line under tslab's and
 * Deno's conventions); the display helpers reach Deno's kernel API; the run comparison finds
 * a changed number; Deno is found, and a too-old one or missing addons are named.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { checkNotebooks, bareSpecifier } from '../sdk/notebook/check.ts';
import { showMarkdown, showChart, notebookHost } from '../sdk/notebook/display.ts';
import { denoStatus, DENO_MIN_VERSION } from '../sdk/notebook/kernel.ts';
import { DataError } from '../sdk/core/errors.ts';
import { REPO, runCli, tempDir } from './helpers.ts';

const require = createRequire(import.meta.url);
const { compareNotebooks } = require('../kernels/compare-outputs.cjs') as {
  compareNotebooks: (a: string, b: string) => string[];
};

/** A notebook file beside the repository's notebooks (so `hyperfeatures` resolves as there). */
function notebook(cells: (string | { md: string })[], meta: object = {}, nbformat = 4): string {
  const dir = tempDir();
  const path = join(dir, 'nb.ipynb');
  writeFileSync(
    path,
    JSON.stringify({
      nbformat,
      nbformat_minor: 5,
      metadata: { kernelspec: { name: 'deno', language: 'typescript', display_name: 'Deno' }, ...meta },
      cells: cells.map((c) =>
        typeof c === 'string'
          ? { cell_type: 'code', source: c, metadata: {}, outputs: [], execution_count: null }
          : { cell_type: 'markdown', source: c.md, metadata: {} },
      ),
    }),
  );
  return path;
}

describe('notebooks for any kernel', function () {
  this.timeout(120_000);

  it('kernel check passes every committed notebook', async () => {
    const nbs = readdirSync(join(REPO, 'notebooks'))
      .filter((f) => f.endsWith('.ipynb'))
      .map((f) => join(REPO, 'notebooks', f));
    const r = await runCli(['kernel', 'check', ...nbs]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`${nbs.length} notebook\\(s\\), no type errors`));
  });

  it('reports a type error by cell and line, under tslab and Deno conventions; cells may redeclare', async () => {
    // the repository's node_modules resolve `hyperfeatures` for a notebook under REPO
    const dir = join(REPO, 'notebooks');
    const tslab = [
      "import * as sdk from 'hyperfeatures';",
      { md: '# a heading' },
      'const n = 3;\nconst s: string = String(n);',
      '// redeclared, as notebooks do\nconst n = "three";\nconst k: number = await Promise.resolve(1);',
      'const x: number = n;\nconsole.log(x, s, k, sdk.DEFAULT_EXTRACT.steps);',
    ];
    const path = notebook(tslab);
    writeFileSync(join(dir, '.check-test.ipynb'), readFileSyncUtf8(path));
    try {
      const found = checkNotebooks([join(dir, '.check-test.ipynb')]);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.deepEqual([found[0].cell, found[0].line, found[0].column], [5, 1, 7]);
      assert.match(found[0].message, /Type 'string' is not assignable to type 'number'/);
      // Deno's npm: specifiers read as the package; the same error is found
      const deno = [
        "import * as sdk from 'npm:hyperfeatures@0.1.0';",
        "import { showMarkdown } from 'npm:hyperfeatures/notebook';",
        'const bad: string = sdk.DEFAULT_EXTRACT.steps;\nawait showMarkdown("x");\nDeno.jupyter;',
      ];
      writeFileSync(join(dir, '.check-test.ipynb'), readFileSyncUtf8(notebook(deno)));
      const d = checkNotebooks([join(dir, '.check-test.ipynb')]);
      assert.equal(d.length, 1, JSON.stringify(d));
      assert.deepEqual([d[0].cell, d[0].line], [3, 1]);
      assert.match(d[0].message, /Type 'number' is not assignable to type 'string'/);
      // through the command: exit code 2, the cell named
      const r = await runCli(['kernel', 'check', join(dir, '.check-test.ipynb')]);
      assert.equal(r.code, 2);
      assert.match(r.err, /\.check-test\.ipynb: cell 3, line 1:7: Type 'number' is not assignable/);
    } finally {
      rmSync(join(dir, '.check-test.ipynb'), { force: true });
    }
    assert.equal(bareSpecifier('npm:@scope/pkg@^1.2/sub/x'), '@scope/pkg/sub/x');
    assert.equal(bareSpecifier('npm:sharp'), 'sharp');
  });

  it('bad input: another nbformat, another language, a cell in another language', async () => {
    assert.throws(
      () => checkNotebooks([notebook(['1'], {}, 3)]),
      (e: Error) => e instanceof DataError && /nbformat 3, expected 4/.test(e.message),
    );
    assert.throws(
      () => checkNotebooks([notebook(['1'], { kernelspec: { name: 'python3', language: 'python' } })]),
      /a python notebook \(kernel python3\)/,
    );
    const found = checkNotebooks([notebook(['const a = 1;', '%%bash\necho hi'])]);
    assert.ok(found.some((d) => d.cell === 2 && /a bash cell in a TypeScript notebook/.test(d.message)));
    assert.throws(() => checkNotebooks([]), /expected one or more \.ipynb files/);
    assert.throws(() => checkNotebooks([join(tempDir(), 'missing.ipynb')]), /no such notebook file/);
  });

  it("display helpers speak to Deno's kernel when it is the host", async () => {
    const shown: unknown[] = [];
    const g = globalThis as { Deno?: unknown };
    const before = g.Deno;
    g.Deno = { jupyter: { display: async (b: unknown, o: unknown) => void shown.push([b, o]) } };
    try {
      assert.equal(notebookHost(), 'deno');
      await showMarkdown('| a |\n| - |');
      await showChart({
        data: { values: [{ x: 1, y: 2 }] },
        mark: 'point',
        encoding: { x: { field: 'x', type: 'quantitative' } },
      });
      assert.deepEqual(shown[0], [
        { 'text/markdown': '| a |\n| - |', 'text/plain': '| a |\n| - |' },
        { raw: true },
      ]);
      const chart = (shown[1] as [Record<string, unknown>])[0];
      assert.ok(chart['application/vnd.vegalite.v5+json'] && chart['image/svg+xml'] && chart['image/png']);
      // Deno outside a kernel: says so
      g.Deno = {};
      await assert.rejects(showMarkdown('x'), /Deno is not running as a Jupyter kernel/);
    } finally {
      g.Deno = before;
    }
  });

  it('compares two runs of a notebook: the same data passes, a changed number is named', () => {
    const run = (v: number, md: string) =>
      (() => {
        const p = join(tempDir(), 'n.ipynb');
        writeFileSync(
          p,
          JSON.stringify({
            nbformat: 4,
            metadata: {},
            cells: [
              {
                cell_type: 'code',
                source: '',
                outputs: [
                  { output_type: 'display_data', data: { 'text/markdown': md } },
                  {
                    output_type: 'display_data',
                    data: {
                      'application/vnd.vegalite.v5+json': { data: { values: [{ pck: v }] } },
                      'image/png': 'x',
                    },
                  },
                  { output_type: 'display_data', data: { 'image/png': 'abc' } },
                ],
              },
            ],
          }),
        );
        return p;
      })();
    assert.deepEqual(compareNotebooks(run(0.5, '| 50.0 |'), run(0.5 + 1e-9, '| 50.0 |')), []);
    assert.match(
      compareNotebooks(run(0.5, '| 50.0 |'), run(0.51, '| 50.0 |')).join(),
      /cell 1 display 2 \(chart\)\[0\]\[0\]\.pck: 0\.5 vs 0\.51/,
    );
    assert.match(
      compareNotebooks(run(0.5, '| 50.0 |'), run(0.5, '| 51.0 |')).join(),
      /display 1 \(markdown\)/,
    );
  });

  it('finds Deno and names a too-old one or missing native addons', () => {
    const dir = tempDir();
    const fake = join(dir, 'deno');
    writeFileSync(fake, '#!/bin/sh\necho "deno 1.36.4 (release, x86_64-unknown-linux-gnu)"\n');
    chmodSync(fake, 0o755);
    const old = denoStatus(dir, fake);
    assert.equal(old.ok, false);
    assert.match(
      old.detail,
      new RegExp(`deno 1\\.36\\.4 is too old: .* needs Deno >= ${DENO_MIN_VERSION.replace(/\./g, '\\.')}`),
    );
    const real = denoStatus(REPO);
    assert.ok(real.ok, real.detail);
    const bare = denoStatus(tempDir(), real.path);
    assert.equal(bare.ok, false);
    assert.match(
      bare.detail,
      /native addons do not load .*onnxruntime-node.*Run `npm install hyperfeatures` there/,
    );
  });
});

function readFileSyncUtf8(p: string): string {
  return readFileSync(p, 'utf8');
}
