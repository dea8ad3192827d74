import assert from 'node:assert/strict';
import { Rng } from '../../sdk/core/rng.ts';
import { ConfigError } from '../../sdk/core/errors.ts';

describe('core/rng', () => {
  it('is reproducible per seed and differs across seeds', () => {
    const a = new Rng(7).normalArray(100);
    assert.deepEqual(a, new Rng(7).normalArray(100));
    assert.notDeepEqual(a, new Rng(8).normalArray(100));
  });

  it('draws standard normals and uniforms with the right moments', () => {
    const rng = new Rng(1);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = rng.normal();
      s += v;
      s2 += v * v;
    }
    assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
    assert.ok(Math.abs(s2 / n - 1) < 0.02, `variance ${s2 / n}`);
    const u = Array.from({ length: 10000 }, () => rng.uniform());
    assert.ok(u.every((v) => v >= 0 && v < 1));
    assert.ok(Math.abs(u.reduce((x, y) => x + y) / u.length - 0.5) < 0.02);
  });

  it('permutes every index exactly once', () => {
    const p = new Rng(3).permutation(50);
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      p,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it('rejects seeds that are not non-negative integers', () => {
    assert.throws(() => new Rng(-1), ConfigError);
    assert.throws(() => new Rng(1.5), /seed: expected a non-negative integer, got 1.5/);
  });
});
