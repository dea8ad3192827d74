import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadStableDiffusion, type StableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { generateLatents, invertImages, invertLatents, generateImages } from '../../sdk/diffusion/extract.ts';
import { FeatureStack } from '../../sdk/diffusion/feature-stack.ts';
import { PAPER_SAVE_TIMESTEPS } from '../../sdk/diffusion/plan.ts';
import { runDiffusion } from '../../sdk/diffusion/loop.ts';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { captureLogs } from '../../sdk/core/logger.ts';
import { ConfigError, DataError } from '../../sdk/core/errors.ts';
import {
  FIXTURES,
  ON_DEVICE,
  REFERENCE,
  TEST_DEVICE,
  assertClose,
  rejectsWith,
  tempDir,
  tolerance,
} from '../helpers.ts';

const LAYERS = Array.from({ length: 12 }, (_, i) => i + 1);

describe(`diffusion extractor on tiny-sd15 on ${TEST_DEVICE}`, () => {
  let sd: StableDiffusion;
  before(async () => {
    sd = await loadStableDiffusion(join(REFERENCE, 'tiny-sd15'), ON_DEVICE);
  });
  after(() => sd.dispose());

  // on a software GPU a 50-step run takes minutes: there the 50-step taps are checked in the
  // trajectory test below, from the same run
  const tapCases = [
    ['inversion_1', 1, [0]],
    ['inversion_50', 50, [...PAPER_SAVE_TIMESTEPS]],
  ] as const;
  for (const [name, steps, ts] of TEST_DEVICE === 'cpu' ? tapCases : tapCases.slice(0, 1)) {
    it(`matches the original ${name}: every raw and resized tap`, async () => {
      const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases', `${name}.safetensors`));
      const [stack] = await invertLatents(sd, t.get('latent')!, t.get('cond')!, {
        steps,
        saveTimesteps: [...ts],
        layers: LAYERS,
      });
      const r16 = stack.resized(16);
      for (const s of ts) {
        for (const l of LAYERS) {
          assertClose(
            stack.map(s, l),
            t.get(`t${s}_l${l}`)!,
            tolerance(name, `t${s}_l${l}`),
            `${name} t${s}_l${l}`,
          );
          assertClose(
            r16.map(s, l),
            t.get(`r16_t${s}_l${l}`)!,
            tolerance(name, `r16_t${s}_l${l}`),
            `${name} r16_t${s}_l${l}`,
          );
        }
      }
    });
  }

  it('matches the x0 trajectory, final latent and raw taps of the 50-step inversion', async () => {
    const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases/inversion_50.safetensors'));
    const saveTimesteps = [...PAPER_SAVE_TIMESTEPS];
    const r = await runDiffusion(sd.unet, t.get('latent')!, {
      mode: 'inversion',
      steps: 50,
      plan: { saveTimesteps, layers: LAYERS },
      cond: t.get('cond')!,
    });
    saveTimesteps.forEach((s, i) =>
      r.captures[i].forEach((tap, l) =>
        assertClose(
          tap,
          t.get(`t${s}_l${l + 1}`)!,
          tolerance('inversion_50', `t${s}_l${l + 1}`),
          `t${s}_l${l + 1}`,
        ),
      ),
    );
    r.x0Preds.forEach((x, i) =>
      assertClose(x, t.get(`x0_${i}`)!, tolerance('inversion_50', `x0_${i}`), `x0_${i}`),
    );
    assertClose(
      r.finalLatent,
      t.get('final_latent')!,
      tolerance('inversion_50', 'final_latent'),
      'final_latent',
    );
  });

  it('matches the x0 trajectory and final latent of the guided 50-step generation', async () => {
    const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases/generation_cfg.safetensors'));
    const r = await generateLatents(sd, t.get('latent')!, t.get('cond')!, {
      steps: 50,
      saveTimesteps: [0],
      layers: [1],
      guidance: { scale: 7.5, uncond: t.get('uncond')! },
    });
    assert.equal(r.x0Preds.length, 51);
    r.x0Preds.forEach((x, i) =>
      assertClose(x, t.get(`x0_${i}`)!, tolerance('generation_cfg', `x0_${i}`), `x0_${i}`),
    );
    assertClose(
      r.finalLatent,
      t.get('final_latent')!,
      tolerance('generation_cfg', 'final_latent'),
      'final_latent',
    );
  });

  it('the empty prompt embedding matches the reference condition', async () => {
    const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases/inversion_1.safetensors'));
    assertClose(await sd.textEncoder.encode(''), t.get('cond')!, 1e-4, 'cond');
  });

  it('inverts real images in a batch exactly as one by one, and caches the result', async () => {
    const images = ['spair/JPEGImages/aeroplane/2008_007604.jpg', 'photos/chelsea.png'].map((p) =>
      join(FIXTURES, p),
    );
    const cache = tempDir();
    const o = { steps: 3, saveTimesteps: [2, 0], layers: [1, 6, 12], loadSize: 64, imageSize: 64, cache };
    const pair = await invertImages(sd, images, { ...o, batchSize: 2 });
    const single = await invertImages(sd, [images[1]], { ...o, cache: false });
    for (const l of [1, 6, 12])
      assert.ok(relativeError(single[0].map(0, l).data, pair[1].map(0, l).data) < 1e-4);
    assert.deepEqual(pair[0].channels(), [96, 96, 32]);
    assert.deepEqual([...pair[0].map(2, 12).shape], [1, 32, 8, 8]);
    assert.ok(pair[1].meta.originalSize!.width > 0);
    assert.equal(readdirSync(cache).length, 2);
    const again = await invertImages(sd, images, { ...o, batchSize: 2 });
    assert.deepEqual(again[0].map(0, 6).data, pair[0].map(0, 6).data);
    // a corrupt entry is detected, recomputed and never returned
    const [first] = readdirSync(cache);
    writeFileSync(join(cache, first), 'garbage');
    const { result, records } = await captureLogs(() => invertImages(sd, images, { ...o, batchSize: 2 }));
    assert.ok(records.some((r) => r.level === 'warn' && /unreadable/.test(r.message)));
    // recomputed alone (a batch of one): the same bits on the CPU; a GPU's kernels may sum a
    // batch of two in another order
    if (TEST_DEVICE === 'cpu') assert.deepEqual(result[0].map(0, 6).data, pair[0].map(0, 6).data);
    else assert.ok(relativeError(result[0].map(0, 6).data, pair[0].map(0, 6).data) < 1e-5);
  });

  it('generates images with guidance and captures generation features', async () => {
    const { stacks, images } = await generateImages(sd, ['a cat', 'a dog'], {
      steps: 2,
      saveTimesteps: [0, 1],
      layers: [4, 10],
      size: 64,
      guidanceScale: 7.5,
      seed: 1,
    });
    assert.equal(stacks.length, 2);
    assert.deepEqual([...images[0].shape], [1, 3, 64, 64]);
    // no size: the UNet's sample_size x 8, as diffusers' pipeline (tiny-sd15: 32 -> 256)
    const byModel = await generateImages(sd, ['a cat'], { steps: 1, saveTimesteps: [0], layers: [4] });
    assert.deepEqual(
      [...byModel.images[0].shape],
      [1, 3, sd.unet.config.sampleSize * 8, sd.unet.config.sampleSize * 8],
    );
    const flipped = stacks[0].flipped();
    assert.deepEqual(flipped.saveTimesteps, [0, 1], 'labels stay; maps swap');
    assert.equal(flipped.map(0, 4), stacks[0].map(1, 4));
    assert.ok(flipped.meta.flipped && !flipped.flipped().meta.flipped);
    assert.notDeepEqual(stacks[0].map(0, 4).data, stacks[1].map(0, 4).data);
  });

  it('rejects bad settings and unreadable images with typed errors', async () => {
    await rejectsWith(
      invertImages(sd, [join(FIXTURES, 'photos/chelsea.png')], { steps: 50, saveTimesteps: [50] }),
      ConfigError,
    );
    await rejectsWith(
      invertImages(sd, [join(FIXTURES, 'photos/chelsea.png')], { layers: [13] }),
      ConfigError,
    );
    await rejectsWith(
      invertImages(sd, [join(FIXTURES, 'photos/chelsea.png')], { imageSize: 0 }),
      ConfigError,
    );
    await rejectsWith(invertImages(sd, [join(FIXTURES, 'nope.png')], { steps: 1 }), DataError);
  });
});

describe('FeatureStack', () => {
  const maps = [0, 1].map((s) => [1, 2].map((l) => Tensor.zeros([1, l, 2, 2]).map(() => 10 * s + l)));
  const stack = new FeatureStack([49, 0], [1, 2], maps, {
    model: 'x',
    mode: 'inversion',
    steps: 50,
    imageSize: 512,
    seed: null,
  });

  it('concatenates timestep-major (t0 l1 l2, t1 l1 l2)', () => {
    const c = stack.concat(2);
    assert.deepEqual([...c.shape], [1, 6, 2, 2]);
    const firstOfChannel = Array.from({ length: 6 }, (_, ch) => c.data[ch * 4]);
    assert.deepEqual(firstOfChannel, [1, 2, 2, 11, 12, 12]);
    assert.deepEqual(stack.flipped().concat(2).data.slice(0, 4), Float32Array.from([11, 11, 11, 11]));
  });

  it('saves and loads with tensors named t{s}_l{l} and metadata', async () => {
    const path = join(tempDir(), 'f.safetensors');
    await stack.save(path);
    const { tensors } = await readAllSafetensors(path);
    assert.deepEqual([...tensors.keys()].sort(), ['t0_l1', 't0_l2', 't49_l1', 't49_l2']);
    const back = await FeatureStack.load(path);
    assert.deepEqual(back.saveTimesteps, [49, 0]);
    assert.deepEqual(back.meta, stack.meta);
    assert.deepEqual(back.map(0, 2).data, stack.map(0, 2).data);
    await rejectsWith(FeatureStack.load(join(REFERENCE, 'cases/adamw.safetensors')), DataError);
  });
});
