/**
 * The UNet's two attention kernels: fused (onnxruntime's MultiHeadAttention, the default) and
 * exact (MatMul + Softmax + MatMul, the export's kernels). Both are held to the reference in
 * parity.test.ts; here: they agree with each other at batch 2, the default is fused, each is
 * keyed apart in every cache, and a bad value is refused.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { UNet, unetNumerics } from '../../sdk/model/unet/index.ts';
import { REFERENCE, rejectsWith, tempDir } from '../helpers.ts';

/** The op types of the one graph built in a fresh cache folder. */
function builtOps(cacheDir: string): string {
  const [entry] = readdirSync(cacheDir).filter((d) => d.startsWith('unet-'));
  return readFileSync(join(cacheDir, entry, 'model.onnx')).toString('latin1');
}

describe('attention kernels (fused default, exact opt-in)', function () {
  this.timeout(300_000);
  it('agree on every output, the default builds MultiHeadAttention, and a misspelt one is refused', async () => {
    const dir = join(REFERENCE, 'tiny-sd15');
    const [defaultCache, exactCache] = [tempDir(), tempDir()];
    const [fused, exact] = [
      await UNet.load(dir, { cacheDir: defaultCache }),
      await UNet.load(dir, { attention: 'exact', cacheDir: exactCache }),
    ];
    try {
      assert.match(builtOps(defaultCache), /MultiHeadAttention/);
      assert.doesNotMatch(builtOps(exactCache), /MultiHeadAttention/);
      assert.match(builtOps(exactCache), /Softmax/);
      const r = new Rng(4);
      const input = {
        sample: new Tensor(r.normalArray(2 * 4 * 16 * 16), [2, 4, 16, 16]),
        timestep: 261,
        encoderHiddenStates: new Tensor(r.normalArray(2 * 77 * exact.config.crossAttentionDim), [
          2,
          77,
          exact.config.crossAttentionDim,
        ]),
      };
      const [a, b] = [await exact.run(input), await fused.run(input)];
      for (const [name, x, y] of [
        ['noise_pred', a.noisePred, b.noisePred],
        ...a.taps.map((t, i) => [`tap ${i + 1}`, t, b.taps[i]]),
      ] as [string, Tensor, Tensor][]) {
        const e = relativeError(y.data, x.data);
        assert.ok(e > 0, `${name}: the two kernels should round differently`);
        assert.ok(e < 1e-5, `${name}: ${e}`);
      }
    } finally {
      await Promise.all([exact.dispose(), fused.dispose()]);
    }
    await rejectsWith(UNet.load(dir, { attention: 'flash' as never }), ConfigError);
  });

  it('keys the default and exact apart: exact keeps the key it had as the old default', () => {
    assert.deepEqual(unetNumerics({}), { attention: 'fused' });
    assert.deepEqual(unetNumerics({ attention: 'fused' }), { attention: 'fused' });
    assert.deepEqual(unetNumerics({ attention: 'exact' }), {});
    assert.throws(() => unetNumerics({ attention: 'flash' as never }), ConfigError);
  });
});
