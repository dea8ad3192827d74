/**
 * A notebook as one self-contained, interactive HTML page: nbconvert renders the notebook, and
 * every Vega-Lite output is rendered live in the page by vega and vega-lite (inlined from the
 * package's own dependencies: no CDN, works offline), with the same clicks and sliders as in
 * JupyterLab. Where scripts do not run, the output's static SVG is what shows.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ConfigError, DataError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';

const VEGALITE_MIME = /^application\/vnd\.vegalite\.v\d\+json$/;

interface Output {
  data?: Record<string, unknown>;
}
interface Cell {
  outputs?: Output[];
}

/** `</script` inside inlined code would end the script element early. */
const scriptSafe = (code: string) => code.replace(/<\/script/gi, '<\\/script');

/** Runs in the page: render every Vega-Lite output, keep the views (and errors) for inspection. */
const RUNTIME = `
window.hfViews = {}; window.hfErrors = []; window.hfReady = false;
window.addEventListener('error', (e) => window.hfErrors.push(String(e.message)));
document.addEventListener('DOMContentLoaded', async () => {
  for (const el of document.querySelectorAll('.hf-vl')) {
    try {
      const spec = JSON.parse(document.getElementById(el.id + '-spec').textContent);
      const compiled = vegaLite.compile(spec).spec;
      el.innerHTML = '';
      const view = new vega.View(vega.parse(compiled), { renderer: 'svg', container: el, hover: true });
      await view.runAsync();
      window.hfViews[el.id] = view;
    } catch (e) {
      window.hfErrors.push(String(e && e.stack || e));
      console.error(e);
    }
  }
  window.hfReady = true;
});
`;

/** The notebook with a live-rendering text/html added to every Vega-Lite output (nbconvert prefers html). */
export function withLiveCharts(nb: { cells: Cell[] }): { cells: Cell[]; charts: number } {
  let n = 0;
  for (const cell of nb.cells)
    for (const out of cell.outputs ?? []) {
      const mime = Object.keys(out.data ?? {}).find((k) => VEGALITE_MIME.test(k));
      if (!mime) continue;
      const id = `hf-vl-${n++}`;
      const svg =
        typeof out.data!['image/svg+xml'] === 'string' ? (out.data!['image/svg+xml'] as string) : '';
      const spec = scriptSafe(JSON.stringify(out.data![mime]));
      out.data!['text/html'] =
        `<div class="hf-vl" id="${id}">${svg}</div>\n<script type="application/json" id="${id}-spec">${spec}</script>`;
    }
  return { cells: nb.cells, charts: n };
}

function vegaScripts(): string {
  const require = createRequire(import.meta.url);
  const file = (pkg: string, rel: string) => {
    const main = require.resolve(pkg);
    const root = main.slice(0, main.lastIndexOf(`node_modules/${pkg}/`) + `node_modules/${pkg}/`.length);
    return readFileSync(join(root, rel), 'utf8');
  };
  return [file('vega', 'build/vega.min.js'), file('vega-lite', 'build/vega-lite.min.js'), RUNTIME]
    .map((code) => `<script>${scriptSafe(code)}</script>`)
    .join('\n');
}

/**
 * Export `notebook` to `out` (HTML) with live Vega-Lite charts. Needs Jupyter's nbconvert
 * (`jupyter-nbconvert`, e.g. Debian's package) on the PATH.
 * @throws ConfigError when nbconvert is missing or fails, DataError for a file that is not a notebook.
 */
export async function exportNotebookHtml(notebook: string, out: string): Promise<{ charts: number }> {
  let nb: { cells: Cell[] };
  try {
    nb = JSON.parse(readFileSync(notebook, 'utf8')) as { cells: Cell[] };
    if (!Array.isArray(nb.cells)) throw new Error('no "cells" list');
  } catch (e) {
    throw new DataError(`${notebook}: not a Jupyter notebook (${(e as Error).message})`, { cause: e });
  }
  const { charts } = withLiveCharts(nb);
  const dir = mkdtempSync(join(tmpdir(), 'hf-html-'));
  try {
    const copy = join(dir, basename(notebook));
    writeFileSync(copy, JSON.stringify(nb));
    const r = spawnSync('jupyter-nbconvert', ['--to', 'html', '--output-dir', dir, copy], {
      encoding: 'utf8',
    });
    if (r.error || r.status !== 0)
      throw new ConfigError(
        r.error
          ? `HTML export needs Jupyter's nbconvert (jupyter-nbconvert on the PATH: apt install jupyter-nbconvert, or pip install nbconvert): ${r.error.message}`
          : `nbconvert failed on ${notebook}:\n${r.stderr.slice(-2000)}`,
      );
    // Debian's nbconvert points at local copies of require.js and MathJax; drop the ones this
    // machine lacks (they could only fail to load)
    const html = readFileSync(copy.replace(/\.ipynb$/, '.html'), 'utf8').replace(
      /<script[^>]*\bsrc="file:\/\/([^"?]+)[^"]*"[^>]*>\s*<\/script>/g,
      (tag, file: string) => (existsSync(file) ? tag : `<!-- ${file} is not installed -->`),
    );
    const at = html.indexOf('</head>');
    if (at < 0) throw new ConfigError('nbconvert produced a page without </head>');
    await writeFileAtomic(out, Buffer.from(html.slice(0, at) + vegaScripts() + '\n' + html.slice(at)));
    return { charts };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
