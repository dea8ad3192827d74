// Compare the deterministic outputs of one notebook run with another's (Deno's kernel against
// the committed tslab run): per code cell, the number of displays, each markdown table or text
// exactly, and each Vega-Lite chart's data (numbers to a relative 1e-6). Pictures are counted,
// not compared byte for byte; plain-text reprs differ by runtime (Node's vs Deno's inspect).
// usage: node kernels/compare-outputs.cjs <other-run-dir> <notebook.ipynb>...
const fs = require('node:fs');
const path = require('node:path');

/** The comparable outputs of a notebook, cell by cell. */
function outputsOf(file) {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
  return nb.cells
    .map((c, i) => ({ c, i }))
    .filter(({ c }) => c.cell_type === 'code')
    .map(({ c, i }) => ({
      cell: i + 1,
      errors: (c.outputs ?? [])
        .filter((o) => o.output_type === 'error')
        .map((o) => `${o.ename}: ${o.evalue}`),
      displays: (c.outputs ?? [])
        .filter((o) => o.output_type === 'display_data')
        .map((o) => {
          const d = o.data ?? {};
          if (d['text/markdown'] !== undefined)
            return { kind: 'markdown', value: [].concat(d['text/markdown']).join('') };
          const vl = d['application/vnd.vegalite.v5+json'];
          if (vl) return { kind: 'chart', value: chartData(vl) };
          return { kind: 'picture', value: Object.keys(d).filter((k) => k.startsWith('image/')).length > 0 };
        }),
    }));
}

/** A chart's data: inline values and named datasets. */
function chartData(spec) {
  const out = [];
  const walk = (s) => {
    if (!s || typeof s !== 'object') return;
    if (s.data?.values) out.push(s.data.values);
    if (s.datasets) out.push(s.datasets);
    for (const k of ['layer', 'hconcat', 'vconcat', 'concat']) if (Array.isArray(s[k])) s[k].forEach(walk);
    if (s.spec) walk(s.spec);
  };
  walk(spec);
  return out;
}

function sameValue(a, b, where, diffs) {
  if (typeof a === 'number' && typeof b === 'number') {
    if (!(a === b || Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b))))
      diffs.push(`${where}: ${a} vs ${b}`);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return void diffs.push(`${where}: ${a.length} vs ${b.length} entries`);
    return a.forEach((x, i) => sameValue(x, b[i], `${where}[${i}]`, diffs));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) sameValue(a[k], b[k], `${where}.${k}`, diffs);
    return;
  }
  if (a !== b)
    diffs.push(`${where}: ${JSON.stringify(a)?.slice(0, 200)} vs ${JSON.stringify(b)?.slice(0, 200)}`);
}

/** Differences between two runs of one notebook (empty: the same). */
function compareNotebooks(reference, other) {
  const [a, b] = [outputsOf(reference), outputsOf(other)];
  const diffs = [];
  if (a.length !== b.length) return [`${a.length} vs ${b.length} code cells`];
  for (const [k, cell] of a.entries()) {
    const theirs = b[k];
    const where = `cell ${cell.cell}`;
    if (theirs.errors.length) diffs.push(`${where}: error in the other run: ${theirs.errors.join('; ')}`);
    if (cell.displays.length !== theirs.displays.length) {
      diffs.push(`${where}: ${cell.displays.length} vs ${theirs.displays.length} displays`);
      continue;
    }
    cell.displays.forEach((d, j) => {
      if (d.kind !== theirs.displays[j].kind)
        return void diffs.push(`${where} display ${j + 1}: ${d.kind} vs ${theirs.displays[j].kind}`);
      sameValue(d.value, theirs.displays[j].value, `${where} display ${j + 1} (${d.kind})`, diffs);
    });
  }
  return diffs;
}

if (require.main === module) {
  const [dir, ...notebooks] = process.argv.slice(2);
  if (!dir || !notebooks.length) {
    process.stderr.write('usage: node kernels/compare-outputs.cjs <other-run-dir> <notebook.ipynb>...\n');
    process.exit(2);
  }
  let failed = 0;
  for (const nb of notebooks) {
    const other = path.join(dir, path.basename(nb));
    const diffs = fs.existsSync(other) ? compareNotebooks(nb, other) : [`no run at ${other}`];
    const shown = outputsOf(nb).reduce((n, c) => n + c.displays.length, 0);
    if (diffs.length) {
      failed++;
      process.stderr.write(
        `${nb}: ${diffs.length} difference(s)\n${diffs
          .slice(0, 20)
          .map((d) => `  ${d}`)
          .join('\n')}\n`,
      );
    } else process.stdout.write(`${nb}: the same ${shown} displays (tables, chart data) in both runs\n`);
  }
  process.exit(failed ? 1 : 0);
}

module.exports = { compareNotebooks, outputsOf };
