/**
 * The opt-in fused attention (onnxruntime's MultiHeadAttention): same UNet outputs as the exact
 * graph within a small bound on the reference checkpoint, a bad value refused.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { REFERENCE, rejectsWith } from '../helpers.ts';

describe('fused attention (opt-in)', function () {
  this.timeout(300_000);
  it('matches the exact graph closely on every output, and is refused when misspelt', async () => {
    const dir = join(REFERENCE, 'tiny-sd15');
    const [exact, fused] = [await UNet.load(dir), await UNet.load(dir, { attention: 'fused' })];
    try {
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
        assert.ok(e < 1e-4, `${name}: ${e}`);
      }
    } finally {
      await Promise.all([exact.dispose(), fused.dispose()]);
    }
    await rejectsWith(UNet.load(dir, { attention: 'flash' as never }), ConfigError);
  });
});
