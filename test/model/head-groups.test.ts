/**
 * Self-attention computed head by head (memory): the same numbers as all heads at once, chosen
 * only where the scores at the model's native size are large.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { GraphBuilder } from '../../sdk/model/onnx/graph.ts';
import { attention } from '../../sdk/model/onnx/nn.ts';
import { Session } from '../../sdk/model/runtime.ts';
import { parseUNetConfig } from '../../sdk/model/unet/config.ts';
import { selfAttentionHeadGroups } from '../../sdk/model/unet/build.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { REFERENCE, tempDir } from '../helpers.ts';

async function attend(
  tokens: number,
  channels: number,
  heads: number,
  groups: number,
): Promise<Float32Array> {
  const g = new GraphBuilder();
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, [1, tokens, channels]));
  g.output('o', attention(g, q, k, v, heads, channels / heads, undefined, false, groups), [
    1,
    tokens,
    channels,
  ]);
  const s = await Session.create(await g.serialize());
  try {
    const r = new Rng(3);
    const x = () => new Tensor(r.normalArray(tokens * channels), [1, tokens, channels]);
    return (await s.run({ q: x(), k: x(), v: x() })).o.data;
  } finally {
    await s.dispose();
  }
}

describe('self-attention head by head', function () {
  this.timeout(300_000);
  it('gives bit-identical outputs at SD head sizes (SD-1.5: 8 x 40, SD-2: 5 x 64)', async () => {
    for (const [tokens, channels, heads] of [
      [1024, 320, 8],
      [576, 320, 5],
    ]) {
      const [one, each] = [
        await attend(tokens, channels, heads, 1),
        await attend(tokens, channels, heads, heads),
      ];
      assert.ok(one.some((x) => x !== 0));
      assert.deepEqual(each, one, `${heads} heads of ${channels / heads}`);
    }
  });

  it('is chosen where the native-size scores are large: SD-1.5 and SD-2 level 0, not tiny models', () => {
    const sd15 = parseUNetConfig('sd15', sdConfig(64, 8));
    assert.deepEqual(
      [0, 1, 2, 3].map((l) => selfAttentionHeadGroups(sd15, l)),
      [8, 1, 1, 1],
    );
    const sd2 = parseUNetConfig('sd2', sdConfig(96, [5, 10, 20, 20]));
    assert.deepEqual(
      [0, 1, 2, 3].map((l) => selfAttentionHeadGroups(sd2, l)),
      [5, 1, 1, 1],
    );
    const tiny = parseUNetConfig('tiny', sdConfig(32, 8));
    assert.deepEqual(
      [0, 1, 2, 3].map((l) => selfAttentionHeadGroups(tiny, l)),
      [1, 1, 1, 1],
    );
  });

  it('keeps a whole UNet close when forced on a tiny checkpoint (every output)', async () => {
    const dir = tempDir();
    cpSync(join(REFERENCE, 'tiny-sd15', 'unet'), join(dir, 'unet'), { recursive: true });
    const cfgPath = join(dir, 'unet', 'config.json');
    const raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    // head groups are the exact graph's (the fused kernel never holds the scores)
    const plain = await UNet.load(dir, { attention: 'exact' });
    writeFileSync(cfgPath, JSON.stringify({ ...raw, sample_size: 1024 })); // every level grouped
    const grouped = await UNet.load(dir, { attention: 'exact' });
    try {
      assert.ok(selfAttentionHeadGroups(grouped.config, 0) > 1);
      const r = new Rng(5);
      const c = plain.config.crossAttentionDim;
      const input = {
        sample: new Tensor(r.normalArray(4 * 24 * 24), [1, 4, 24, 24]),
        timestep: 500,
        encoderHiddenStates: new Tensor(r.normalArray(77 * c), [1, 77, c]),
      };
      const [a, b] = [await plain.run(input), await grouped.run(input)];
      for (const [x, y] of [[a.noisePred, b.noisePred], ...a.taps.map((t, i) => [t, b.taps[i]])])
        for (let i = 0; i < x.data.length; i++)
          assert.ok(Math.abs(x.data[i] - y.data[i]) <= 1e-5 * (1 + Math.abs(x.data[i])));
    } finally {
      await Promise.all([plain.dispose(), grouped.dispose()]);
    }
  });
});

function sdConfig(sampleSize: number, heads: number | number[]) {
  return {
    _class_name: 'UNet2DConditionModel',
    sample_size: sampleSize,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [320, 640, 1280, 1280],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 2,
    attention_head_dim: heads,
    cross_attention_dim: 768,
  };
}
