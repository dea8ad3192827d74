import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UNet } from '../../sdk/model/unet/index.ts';
import { Vae } from '../../sdk/model/vae/index.ts';
import { TextEncoder } from '../../sdk/model/clip/index.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { writeSafetensors, readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { ConfigError, DataError, ModelError, ShapeError } from '../../sdk/core/errors.ts';
import { rejectsWith, tempDir } from '../helpers.ts';

describe('model loading: bad input gives typed errors naming the file and field', () => {
  let base: string;
  before(async () => {
    base = join(tempDir(), 'tiny');
    await makeTinyCheckpoint(base, { seed: 5 });
  });
  const copy = () => {
    const dir = join(tempDir(), 'm');
    cpSync(base, dir, { recursive: true });
    return dir;
  };

  it('a missing component folder', async () => {
    const dir = copy();
    rmSync(join(dir, 'vae'), { recursive: true });
    const e = await rejectsWith(Vae.load(dir), ModelError);
    assert.match(e.message, /missing component folder "vae\/"/);
  });

  it('unsupported config fields, all listed with the supported values', async () => {
    const dir = copy();
    const path = join(dir, 'unet/config.json');
    const cfg = JSON.parse(readFileSync(path, 'utf8'));
    Object.assign(cfg, {
      act_fn: 'gelu',
      resnet_time_scale_shift: 'scale_shift',
      down_block_types: ['SimpleCrossAttnDownBlock2D', 'DownBlock2D', 'DownBlock2D', 'DownBlock2D'],
    });
    writeFileSync(path, JSON.stringify(cfg));
    const e = await rejectsWith(UNet.load(dir), ConfigError);
    assert.ok(e.message.startsWith(path));
    assert.match(e.message, /field "act_fn" is "gelu"; supported: "silu"/);
    assert.match(e.message, /field "resnet_time_scale_shift" is "scale_shift"; supported: "default"/);
    assert.match(
      e.message,
      /field "down_block_types" .* supported: a list of CrossAttnDownBlock2D \| DownBlock2D/,
    );
  });

  it('weights whose names or shapes do not match the config, reported together before building', async () => {
    const dir = copy();
    const file = join(dir, 'text_encoder/model.safetensors');
    const { tensors } = await readAllSafetensors(file);
    tensors.delete('text_model.final_layer_norm.weight');
    tensors.set('text_model.encoder.layers.1.mlp.fc1.weight', Tensor.zeros([64, 32]));
    await writeSafetensors(file, Object.fromEntries(tensors));
    const e = await rejectsWith(TextEncoder.load(dir), ModelError);
    assert.match(e.message, /missing weight "text_model.final_layer_norm.weight" \(expected shape \[32\]\)/);
    assert.match(
      e.message,
      /weight "text_model.encoder.layers.1.mlp.fc1.weight" has shape \[64, 32\], the config implies \[128, 32\]/,
    );
  });

  it('a truncated weights file', async () => {
    const dir = copy();
    const file = join(dir, 'unet/diffusion_pytorch_model.safetensors');
    truncateSync(file, statSync(file).size - 100);
    const e = await rejectsWith(UNet.load(dir), DataError);
    assert.match(e.message, /diffusion_pytorch_model.safetensors: truncated tensor/);
  });

  it('pickled .bin weights are refused with a pointer to safetensors', async () => {
    const dir = copy();
    rmSync(join(dir, 'unet/diffusion_pytorch_model.safetensors'));
    writeFileSync(join(dir, 'unet/diffusion_pytorch_model.bin'), 'x');
    const e = await rejectsWith(UNet.load(dir), ModelError);
    assert.match(e.message, /found diffusion_pytorch_model.bin: pickled PyTorch weights are not loaded/);
  });

  it('inputs that do not fit the UNet', async () => {
    const unet = await UNet.load(base);
    const ctx = Tensor.zeros([1, 77, 32]);
    await rejectsWith(
      unet.run({ sample: Tensor.zeros([1, 3, 8, 8]), timestep: 1, encoderHiddenStates: ctx }),
      ShapeError,
    ).then((e) =>
      assert.match(e.message, /unet sample: expected shape \[\*, 4, \*, \*\], got \[1, 3, 8, 8\]/),
    );
    await rejectsWith(
      unet.run({ sample: Tensor.zeros([2, 4, 8, 8]), timestep: 1, encoderHiddenStates: ctx }),
      ShapeError,
    );
    await rejectsWith(
      unet.run({ sample: Tensor.zeros([1, 4, 8, 8]), timestep: [1, 2, 3], encoderHiddenStates: ctx }),
      ShapeError,
    );
    await rejectsWith(
      unet.run({
        sample: Tensor.zeros([1, 4, 8, 8]),
        timestep: 1,
        encoderHiddenStates: ctx,
        classLabels: Tensor.zeros([1, 4]),
      }),
      ShapeError,
    );
    await unet.dispose();
  });
});

describe('model: tiny checkpoints of every style load and run', () => {
  for (const style of ['sd21', 'lotus-g', 'lotus-d'] as const) {
    it(`${style} (fp16 weights converted to fp32), with odd latent sizes`, async () => {
      const dir = join(tempDir(), style);
      await makeTinyCheckpoint(dir, { style, seed: 2, fp16: true });
      const unet = await UNet.load(dir);
      const te = await TextEncoder.load(dir);
      const emb = await te.encode('a photo of a cat');
      assert.deepEqual([...emb.shape], [1, 77, 32]);
      assert.equal(te.tokenizer.padId, 0, 'SD-2 pads with "!"');
      const lotus = style.startsWith('lotus');
      const sample = Tensor.from(
        Array.from({ length: unet.config.inChannels * 5 * 7 }, (_, i) => Math.sin(i)),
        [1, unet.config.inChannels, 5, 7],
      );
      const out = await unet.run({
        sample,
        timestep: 999,
        encoderHiddenStates: emb,
        classLabels: lotus ? Tensor.from([Math.sin(1), 0, Math.cos(1), 1], [1, 4]) : undefined,
      });
      assert.deepEqual([...out.noisePred.shape], [1, 4, 5, 7]);
      assert.ok(out.noisePred.data.every(Number.isFinite));
      assert.deepEqual(
        out.taps.map((t) => t.shape.slice(2).join('x')),
        ['1x1', '1x1', '1x1', '2x2', '2x2', '2x2', '3x4', '3x4', '3x4', '5x7', '5x7', '5x7'],
      );
      await Promise.all([unet.dispose(), te.dispose()]);
    });
  }
});
