/**
 * The opt-in int8 Linear layers (DynamicQuantizeMatMul): the weight quantization by
 * construction, a UNet close to the fp32 graph but not the same, and features made with it never
 * served from (or into) the fp32 entries of the feature cache.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { int8Scales, int8Weights } from '../../sdk/model/quantize.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { FIXTURES, REFERENCE, rejectsWith, runCli, tempDir } from '../helpers.ts';

const TINY = join(REFERENCE, 'tiny-sd15');

describe('int8 Linear layers (opt-in)', function () {
  this.timeout(300_000);

  it('quantizes a Linear weight [out, in] per output row into MatMul layout [in, out]', () => {
    // 7-bit range (see quantize.ts): rows: max |w| 2 -> scale 2/63; an all-zero row keeps scale
    // 1; max 0.5 -> 0.5/63
    const w = Float32Array.from([2, -1.2, 0.3, 0, 0, 0, 0.5, -0.3, 0.1]);
    const s = int8Scales(w, 3, 3);
    assert.deepEqual(Array.from(s), [2 / 63, 1, 0.5 / 63].map(Math.fround));
    // B[i][o] = round(w[o][i] / s[o]): column o of B is row o of w; -1.2 * 63 / 2 = -37.8
    assert.deepEqual(Array.from(int8Weights(w, 3, 3)), [63, 0, 63, -38, 0, -38, 9, 0, 13]);
  });

  it('keeps every UNet output within 3% of the fp32 graph, is not the fp32 graph, and refuses other values', async () => {
    const [fp32, int8] = [await UNet.load(TINY), await UNet.load(TINY, { linear: 'int8' })];
    try {
      const r = new Rng(4);
      const input = {
        sample: new Tensor(r.normalArray(4 * 16 * 16), [1, 4, 16, 16]),
        timestep: 261,
        encoderHiddenStates: new Tensor(r.normalArray(77 * fp32.config.crossAttentionDim), [
          1,
          77,
          fp32.config.crossAttentionDim,
        ]),
      };
      const [a, b] = [await fp32.run(input), await int8.run(input)];
      for (const [name, x, y] of [
        ['noise_pred', a.noisePred, b.noisePred],
        ...a.taps.map((t, i) => [`tap ${i + 1}`, t, b.taps[i]]),
      ] as [string, Tensor, Tensor][]) {
        const e = relativeError(y.data, x.data);
        assert.ok(e < 3e-2 && e > 1e-5, `${name}: ${e}`);
      }
    } finally {
      await Promise.all([fp32.dispose(), int8.dispose()]);
    }
    await rejectsWith(UNet.load(TINY, { linear: 'bf16' as never }), ConfigError);
  });

  it('never shares feature-cache entries with the fp32 graph (extract with the cache on)', async () => {
    const cow = join(FIXTURES, 'spair/JPEGImages/cow/2007_005797.jpg');
    const args = (out: string, ...extra: string[]) => [
      'extract',
      '--model',
      TINY,
      '--images',
      cow,
      '--out',
      out,
      '--steps',
      '1',
      '--save-timesteps',
      '0',
      '--load-size',
      '32',
      '--image-size',
      '32',
      ...extra,
    ];
    const outs = [tempDir(), tempDir(), tempDir()];
    for (const [i, extra] of [[], ['--linear', 'int8'], []].entries()) {
      const r = await runCli(args(outs[i], ...extra));
      assert.equal(r.code, 0, r.err);
    }
    const read = async (d: string) =>
      (
        await readAllSafetensors(
          join(
            d,
            readdirSync(d).find((f) => f.endsWith('.safetensors'))!,
          ),
        )
      ).tensors;
    const [first, quantized, again] = await Promise.all(outs.map(read));
    const name = [...first.keys()].find((k) => first.get(k)!.data.length > 100)!;
    const [f, q, a] = [first, quantized, again].map((t) => t.get(name)!.data);
    assert.ok(relativeError(q, f) > 1e-5, 'int8 features came from the fp32 entry');
    assert.deepEqual(a, f);
    const bad = await runCli(args(tempDir(), '--linear', 'bf16'));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /linear/);
  });
});
