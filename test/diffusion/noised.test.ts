/**
 * DIFT-style features (q(x_t | x0), one UNet call, ensemble mean) against the same thing
 * assembled here from the pieces: alphas_cumprod computed in float64 from the scheduler's
 * definition (DESIGN.md semantics 1), the seeded noises, and single UNet calls.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError } from '../../sdk/core/errors.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { loadImage } from '../../sdk/data/image.ts';
import { noisedFeatures } from '../../sdk/diffusion/noised.ts';
import { loadStableDiffusion, type StableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { FIXTURES, REFERENCE, rejectsWith, ON_DEVICE } from '../helpers.ts';

function alphaBar(t: number): number {
  const [b0, b1] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  let prod = 1;
  for (let i = 0; i <= t; i++) prod *= 1 - (b0 + ((b1 - b0) * i) / 999) ** 2;
  return prod;
}

describe('noised (DIFT-style) features', function () {
  this.timeout(300_000);
  let sd: StableDiffusion;
  const image = join(FIXTURES, 'spair/JPEGImages/aeroplane/2008_007604.jpg');
  before(async () => {
    sd = await loadStableDiffusion(join(REFERENCE, 'tiny-sd15'), ON_DEVICE);
  });
  after(() => sd.dispose());

  it('equals the mean over seeded noises of one UNet call on sqrt(a) x0 + sqrt(1 - a) eps', async () => {
    const t = 261;
    const [f] = await noisedFeatures(sd, [image], {
      timestep: t,
      ensemble: 3,
      batchSize: 2,
      seed: 5,
      prompt: 'a photo of a aeroplane',
      loadSize: 64,
      imageSize: 64,
      layers: [1, 4, 12],
      upBlock: 1,
    });
    const { pixels } = await loadImage(image, { loadSize: 64, modelSize: 64 });
    const x0 = sd.vae.latentFromPosterior(await sd.vae.encode(pixels), 'mean');
    const noise = new Rng(5).normalArray(3 * x0.size);
    const a = alphaBar(t);
    const cond = await sd.textEncoder.encode('a photo of a aeroplane');
    const sums: Float64Array[] = [];
    for (let e = 0; e < 3; e++) {
      const xt = new Tensor(
        Float32Array.from(x0.data, (v, i) => Math.sqrt(a) * v + Math.sqrt(1 - a) * noise[e * x0.size + i]),
        x0.shape,
      );
      const r = await sd.unet.run({
        sample: xt,
        timestep: t,
        encoderHiddenStates: cond,
        tapLayers: [1, 4, 12],
        upBlocks: [1],
      });
      [...r.taps, r.upBlocks[0]].forEach((x, k) => {
        sums[k] ??= new Float64Array(x.size);
        x.data.forEach((v, i) => (sums[k][i] += v / 3));
      });
    }
    const got = [f.stack.map(t, 1), f.stack.map(t, 4), f.stack.map(t, 12), f.upBlock];
    got.forEach((g, k) => {
      const scale = Math.max(...Array.from(sums[k], Math.abs));
      const err = Math.max(...Array.from(g.data, (v, i) => Math.abs(v - sums[k][i])));
      assert.ok(err / scale < 1e-5, `tensor ${k}: ${err / scale}`);
    });
    // the whole output of up-block 1, after its upsampler: half the latent size (8 -> 4 here)
    assert.deepEqual(f.upBlock.shape, [1, sd.unet.config.blockOutChannels[2], 4, 4]);
    assert.equal(f.stack.meta.mode, 'noised');
    assert.equal(f.stack.meta.timestep, t);
    assert.equal(f.stack.meta.ensemble, 3);
  });

  it('the noise seed changes the features at large t', async () => {
    const o = { loadSize: 64, imageSize: 64, ensemble: 1, layers: [6] };
    const [lo1] = await noisedFeatures(sd, [image], { ...o, timestep: 999, seed: 1 });
    const [lo2] = await noisedFeatures(sd, [image], { ...o, timestep: 999, seed: 2 });
    const diff = (x: Tensor, y: Tensor) => Math.max(...Array.from(x.data, (v, i) => Math.abs(v - y.data[i])));
    assert.ok(
      diff(lo1.stack.maps[0][0], lo2.stack.maps[0][0]) > 1e-3,
      'different noises, different features',
    );
  });

  it('rejects settings outside the model and schedule, saying what is allowed', async () => {
    let e = await rejectsWith(noisedFeatures(sd, [image], { timestep: 1000 }), ConfigError);
    assert.match(e.message, /timestep.*0\.\.999/);
    e = await rejectsWith(noisedFeatures(sd, [image], { upBlock: 4 }), ConfigError);
    assert.match(e.message, /upBlock.*0\.\.3/);
    e = await rejectsWith(noisedFeatures(sd, [image], { ensemble: 0 }), ConfigError);
    assert.match(e.message, /ensemble/);
    e = await rejectsWith(noisedFeatures(sd, [], {}), ConfigError);
    assert.match(e.message, /non-empty list/);
  });
});
