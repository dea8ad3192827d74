/**
 * Every notebook executes, in order, on the tiny model, headless through tslab's executor
 * (no Python or Jupyter needed); any cell error, type errors included, fails the test. Cells
 * import the BUILT package by name (`import * as sdk from 'hyperfeatures'`), as users do.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers.ts';

describe('notebooks', () => {
  it('all execute without a cell error (kernels/run-notebooks.cjs)', function () {
    this.timeout(15 * 60_000);
    const notebooks = readdirSync(join(REPO, 'notebooks'))
      .filter((f) => f.endsWith('.ipynb'))
      .sort()
      .map((f) => join('notebooks', f));
    assert.ok(notebooks.length >= 7);
    const r = spawnSync(process.execPath, ['kernels/run-notebooks.cjs', ...notebooks], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, HYPERFEATURES_LOG_LEVEL: 'warn' },
    });
    assert.equal(r.status, 0, `notebook run failed:\n${r.stderr.slice(-3000)}`);
    for (const nb of notebooks) assert.match(r.stderr, new RegExp(`notebook ${nb.replace('.', '\\.')}`));
    assert.doesNotMatch(r.stderr, /FAILED/);
  });
});
