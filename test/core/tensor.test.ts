import assert from 'node:assert/strict';
import { Tensor, concat, resizeBilinear, relativeError, sampleBilinear } from '../../sdk/core/tensor.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { ShapeError } from '../../sdk/core/errors.ts';

describe('core/tensor', () => {
  it('rejects data that does not fit the shape', () => {
    assert.throws(() => new Tensor(new Float32Array(5), [2, 3]), ShapeError);
    assert.throws(() => Tensor.zeros([2, -1]), ShapeError);
  });

  it('concatenates along an inner axis in order', () => {
    const a = Tensor.from([1, 2, 3, 4], [2, 2]);
    const b = Tensor.from([5, 6], [2, 1]);
    const c = concat([a, b], 1);
    assert.deepEqual([...c.shape], [2, 3]);
    assert.deepEqual([...c.data], [1, 2, 5, 3, 4, 6]);
    assert.throws(() => concat([a, Tensor.zeros([3, 1])], 1), ShapeError);
  });

  it('resizes bilinearly like torch align_corners=False', () => {
    // 2x2 -> 4x4: source coords clamp at the border, so each axis weights are [0, .25, .75, 1]
    const x = Tensor.from([0, 1, 2, 3], [1, 1, 2, 2]);
    const y = resizeBilinear(x, 4, 4);
    const r = [0, 0.25, 0.75, 1];
    const want = r.flatMap((ry) => r.map((rx) => 2 * ry + rx));
    assert.deepEqual([...y.data], want);
    // same size is the identity; downscale by 2 averages 2x2 blocks
    assert.deepEqual([...resizeBilinear(x, 2, 2).data], [0, 1, 2, 3]);
    const big = Tensor.from([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30], [1, 1, 4, 4]);
    assert.deepEqual([...resizeBilinear(big, 2, 2).data], [5, 9, 21, 25]);
    assert.throws(() => resizeBilinear(x, 0, 4), ShapeError);
  });

  it('measures relative error as max abs diff over max abs reference', () => {
    assert.equal(relativeError([1, 2.5], [1, 2]), 0.25);
    assert.equal(relativeError([NaN], [1]), Infinity);
  });

  it('checks shapes with wildcards', () => {
    const t = Tensor.zeros([1, 4, 8, 8]);
    t.expectShape('latent', [1, 4, -1, -1]);
    assert.throws(
      () => t.expectShape('latent', [1, 3, -1, -1]),
      /latent: expected shape \[1, 3, \*, \*\], got \[1, 4, 8, 8\]/,
    );
  });
});

describe('sampleBilinear', () => {
  it('equals resizeBilinear at the sampled pixels, bit for bit', () => {
    const x = new Tensor(new Rng(4).normalArray(5 * 7 * 9), [1, 5, 7, 9]);
    const full = resizeBilinear(x, 23, 17);
    const pixels = [0, 16, 17, 200, 23 * 17 - 1];
    sampleBilinear(x, 23, 17, pixels).forEach((v, k) =>
      v.forEach((value, c) => assert.equal(value, full.data[c * 23 * 17 + pixels[k]])),
    );
  });
});
