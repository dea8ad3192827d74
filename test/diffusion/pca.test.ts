import assert from 'node:assert/strict';
import { pcaBasis, pcaRgb } from '../../sdk/diffusion/pca.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { Rng } from '../../sdk/core/rng.ts';

/** Maps whose pixels vary along known orthogonal directions with decreasing variance. */
function planted(hw: number, seed: number): Tensor {
  const rng = new Rng(seed);
  const C = 6;
  const data = new Float32Array(C * hw);
  for (let p = 0; p < hw; p++) {
    const a = 5 * rng.normal();
    const b = 2 * rng.normal();
    const c = 0.5 * rng.normal();
    const f = [a, b, c, 0, 0, 0]; // along e0, e1, e2
    for (let ch = 0; ch < C; ch++) data[ch * hw + p] = f[ch] + 3 + 0.01 * rng.normal();
  }
  return new Tensor(data, [1, C, 1, hw]);
}

describe('diffusion/pca', () => {
  it('recovers planted principal directions in order, with a shared basis', () => {
    const maps = [planted(400, 1), planted(300, 2)];
    const { mean, components } = pcaBasis(maps, 3);
    assert.ok(Math.abs(mean[0]) < 3.5 && Math.abs(mean[3] - 3) < 0.01);
    components.forEach((v, j) => {
      assert.ok(
        Math.abs(Math.abs(v[j]) - 1) < 1e-3,
        `component ${j} is e${j}: ${Array.from(v).map((x) => x.toFixed(3))}`,
      );
      assert.ok(v[j] > 0, 'sign fixed: largest entry positive');
    });
  });

  it('colours the same feature the same in both images', () => {
    const m = planted(100, 3);
    const [a, b] = pcaRgb([m, m]);
    assert.deepEqual(a.data, b.data);
    assert.equal(a.width, 100);
    assert.equal(a.height, 1);
    assert.ok(Math.max(...a.data) === 255 && Math.min(...a.data) === 0, 'percentile scaling spans the range');
  });
});
