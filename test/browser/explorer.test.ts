/**
 * The explorer notebook in a real browser: executed on the tiny model, exported to HTML by
 * nbconvert with live Vega-Lite charts (`kernel html`), loaded in headless Chromium (Debian's
 * chromium driven by puppeteer-core; nothing is downloaded). Asserts that the charts render
 * without console errors, that clicking another source point changes the heatmaps shown, and
 * that the layer slider changes the PCA maps. Screenshots go to test-artifacts/.
 *
 * Needs chromium and jupyter-nbconvert (.ci/run installs both and sets
 * HYPERFEATURES_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportNotebookHtml } from '../../sdk/notebook/html.ts';
import { REPO, tempDir } from '../helpers.ts';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p && existsSync(p),
);
const hasNbconvert = spawnSync('jupyter-nbconvert', ['--version']).status === 0;
const ARTIFACTS = process.env.HYPERFEATURES_TEST_ARTIFACTS ?? join(REPO, 'test-artifacts');

describe('explorer notebook in headless Chromium', function () {
  this.timeout(600_000);
  before(function () {
    if (CHROMIUM && hasNbconvert) return;
    const missing = [!CHROMIUM && 'chromium', !hasNbconvert && 'jupyter-nbconvert']
      .filter(Boolean)
      .join(' and ');
    if (process.env.HYPERFEATURES_REQUIRE_BROWSER === '1') throw new Error(`browser test needs ${missing}`);
    console.warn(`  (skipped: needs ${missing}; .ci/run installs them)`);
    this.skip();
  });

  it('renders the charts, and a click and a slider change what is shown', async () => {
    // executed beside the original (its data/ folder, and the package resolves from there)
    const dir = tempDir();
    const nb = join(REPO, 'notebooks', `.browser-test-${process.pid}.ipynb`);
    copyFileSync(join(REPO, 'notebooks', '08_explorer.ipynb'), nb);
    const html = join(dir, 'explorer.html');
    try {
      const run = spawnSync(process.execPath, [join(REPO, 'kernels', 'run-notebooks.cjs'), '--write', nb], {
        encoding: 'utf8',
      });
      assert.equal(run.status, 0, run.stderr.slice(-3000));
      const { charts } = await exportNotebookHtml(nb, html);
      assert.equal(charts, 2);
      // the MIME type says the spec's Vega-Lite version
      const saved = JSON.parse(readFileSync(nb, 'utf8')) as {
        cells: { outputs?: { data?: Record<string, { $schema?: string }> }[] }[];
      };
      const specs = saved.cells.flatMap((c) => c.outputs ?? []).flatMap((o) => Object.entries(o.data ?? {}));
      const vl = specs.filter(([k]) => k.startsWith('application/vnd.vegalite'));
      assert.equal(vl.length, 2);
      for (const [mime, spec] of vl) assert.equal(mime, 'application/vnd.vegalite.v5+json', spec.$schema);
      for (const [, spec] of vl) assert.match(spec.$schema!, /vega-lite\/v5\.json$/);
    } finally {
      rmSync(nb, { force: true });
    }

    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
      page.on('pageerror', (e) => void problems.push(String(e)));
      await page.setViewport({ width: 1400, height: 1000 });
      await page.goto(`file://${html}`);
      await page.waitForFunction('window.hfReady === true', { timeout: 120_000 });
      assert.deepEqual(await page.evaluate('window.hfErrors'), []);
      const rendered = await page.evaluate(() =>
        [...document.querySelectorAll('.hf-vl')].map(
          (el) => el.querySelectorAll('svg .mark-image image').length,
        ),
      );
      assert.ok(rendered.length === 2 && rendered.every((n) => n > 0), `image marks per chart: ${rendered}`);

      const hrefs = (chart: string) =>
        page.evaluate(
          (id) =>
            [...document.querySelectorAll(`#${id} svg .mark-image image`)].map(
              (i) => i.getAttribute('href') ?? i.getAttribute('xlink:href') ?? '',
            ),
          chart,
        );
      mkdirSync(ARTIFACTS, { recursive: true });
      await (await page.$('#hf-vl-0'))!.screenshot({ path: join(ARTIFACTS, 'explorer-initial.png') });

      // click the 12th candidate point of the source view (its first symbol mark)
      const before = await hrefs('hf-vl-0');
      const box = await page.evaluate(() => {
        const points = document.querySelector('#hf-vl-0 svg .mark-symbol')!.querySelectorAll('path');
        const r = points[11].getBoundingClientRect();
        return { x: r.x + r.width / 2, y: r.y + r.height / 2, n: points.length };
      });
      assert.ok(box.n > 12, `${box.n} candidate points`);
      await page.mouse.click(box.x, box.y);
      await page.waitForFunction(
        (old) =>
          [...document.querySelectorAll('#hf-vl-0 svg .mark-image image')]
            .map((i) => i.getAttribute('href') ?? '')
            .join() !== old,
        { timeout: 10_000 },
        before.join(),
      );
      const after = await hrefs('hf-vl-0');
      const changed = after.filter((h, i) => h !== before[i]).length;
      assert.ok(changed >= 1, 'the heatmaps follow the selected point');
      const selected = await page.evaluate(
        () =>
          (
            window as unknown as { hfViews: Record<string, { data(n: string): { values: number[] }[] }> }
          ).hfViews['hf-vl-0'].data('pt_store')[0].values,
      );
      assert.deepEqual(selected, [11], 'the clicked point is the selection');
      await (await page.$('#hf-vl-0'))!.screenshot({ path: join(ARTIFACTS, 'explorer-clicked.png') });

      // the layer slider of the layer x timestep browser
      const pca = await hrefs('hf-vl-1');
      await page.evaluate(() => {
        const slider = document.querySelector('#hf-vl-1 input[type=range]') as HTMLInputElement;
        slider.value = slider.max;
        slider.dispatchEvent(new Event('input', { bubbles: true }));
      });
      await page.waitForFunction(
        (old) =>
          [...document.querySelectorAll('#hf-vl-1 svg .mark-image image')]
            .map((i) => i.getAttribute('href') ?? '')
            .join() !== old,
        { timeout: 10_000 },
        pca.join(),
      );
      assert.notDeepEqual(await hrefs('hf-vl-1'), pca, 'the slider changes the PCA maps');
      await (await page.$('#hf-vl-1'))!.screenshot({ path: join(ARTIFACTS, 'browser-layer12.png') });
      assert.deepEqual(problems, [], 'no console errors');
    } finally {
      await browser.close();
    }
  });

  it('records execution counts when Jupyter runs the kernel (nbconvert)', () => {
    const dir = tempDir();
    const prefix = join(dir, 'prefix');
    const install = spawnSync(
      process.execPath,
      [join(REPO, 'bin', 'hyperfeatures.js'), 'kernel', 'install', '--prefix', prefix],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(install.status, 0, install.stderr);
    const nb = join(dir, 'counts.ipynb');
    const cell = (src: string) => ({
      cell_type: 'code',
      metadata: {},
      source: [src],
      outputs: [],
      execution_count: null,
    });
    writeFileSync(
      nb,
      JSON.stringify({
        cells: [cell('const a = 1;'), cell('console.log(a + 1)')],
        metadata: { kernelspec: { name: 'hyperfeatures', display_name: 'TypeScript (hyperfeatures)' } },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
    const r = spawnSync(
      'jupyter-nbconvert',
      ['--to', 'notebook', '--execute', '--inplace', '--ExecutePreprocessor.kernel_name=hyperfeatures', nb],
      {
        encoding: 'utf8',
        env: { ...process.env, JUPYTER_PATH: join(prefix, 'share', 'jupyter') },
      },
    );
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const out = JSON.parse(readFileSync(nb, 'utf8')) as {
      cells: { execution_count: number | null; outputs: { text?: string[] }[] }[];
    };
    assert.deepEqual(
      out.cells.map((c) => c.execution_count),
      [1, 2],
    );
    assert.equal(out.cells[1].outputs[0].text!.join(''), '2\n');
  });
});
