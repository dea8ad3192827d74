import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Lotus, taskEmbedding, processingSize } from '../../sdk/lotus/pipeline.ts';
import { alignScaleShift, depthMetrics, normalMetrics } from '../../sdk/lotus/metrics.ts';
import { saveDepth16, readDepthPng } from '../../sdk/lotus/outputs.ts';
import { resizeNearestExact } from '../../sdk/core/resample.ts';
import { SafetensorsReader, readAllSafetensors } from '../../sdk/core/safetensors.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { makeTinyCheckpoint } from '../../sdk/model/tiny/index.ts';
import { ConfigError, ModelError } from '../../sdk/core/errors.ts';
import {
  FIXTURES,
  REFERENCE,
  assertClose,
  lotusTolerance,
  rejectsWith,
  tempDir,
  runCli,
  ON_DEVICE,
  TEST_DEVICE,
} from '../helpers.ts';

const LOTUS = join(REFERENCE, 'lotus/tiny-lotus-g');
const CASE = join(REFERENCE, 'lotus/cases/lotus-g_inference.safetensors');
const COFFEE = join(FIXTURES, 'photos/coffee.png');

describe('lotus: parity with the original Lotus-G pipeline', () => {
  it('matches every intermediate of the reference run through the public API', async () => {
    const r = await SafetensorsReader.open(CASE);
    const lotus = await Lotus.fromModel(LOTUS, ON_DEVICE);
    assert.equal(lotus.variant, 'g');
    const noise = { posteriorEps: await r.read('posterior_eps'), noise: await r.read('noise') };
    for (const task of ['depth', 'rgb'] as const) {
      const res = await lotus.predict(COFFEE, { task, processingRes: 64, noise, keepLatents: true });
      const pre = task === 'depth' ? 'annotation' : 'rgb';
      const check = async (name: string, got: Tensor) =>
        assertClose(got, await r.read(name), lotusTolerance(name), `${task}: ${name}`);
      await check('rgb_resized', res.steps.rgbResized);
      await check('rgb_latent', res.steps.rgbLatent);
      await check('unet_input', res.steps.unetInput);
      await check(`${pre}_x0_latent`, res.steps.x0Latent!);
      await check(`${pre}_decoded`, res.steps.decoded);
      await check(`${pre}_image`, res.steps.image);
      await check(`${pre}_image_full`, res.prediction);
      if (task === 'depth') await check('depth', res.depth!);
      if (TEST_DEVICE !== 'cpu') {
        // the default on a GPU: the x0 latent never visits the host, and the result is the same
        const resident = await lotus.predict(COFFEE, { task, processingRes: 64, noise });
        assert.equal(resident.steps.x0Latent, undefined);
        // the same but for the latent's scaling: x * f32(1/s) on the device, x / s on the host
        const e = relativeError(resident.steps.decoded.data, res.steps.decoded.data);
        assert.ok(e < 1e-5, `decoded on the device: ${e} from the host path`);
      }
    }
    await lotus.dispose();
    await r.close();
  });

  it('reproduces the reference through the CLI with --noise', async () => {
    const out = tempDir();
    const r = await runCli([
      'lotus',
      '--model',
      LOTUS,
      COFFEE,
      '--task',
      'depth',
      '--processing-res',
      '64',
      '--noise',
      CASE,
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const { tensors } = await readAllSafetensors(join(out, 'coffee.safetensors'));
    const { tensors: want } = await readAllSafetensors(CASE);
    assertClose(
      tensors.get('prediction')!,
      want.get('annotation_image_full')!,
      lotusTolerance('annotation_image_full'),
      'prediction',
    );
    assertClose(tensors.get('depth')!, want.get('depth')!, lotusTolerance('depth'), 'depth');
    assert.deepEqual(readdirSync(out).sort(), [
      'coffee.safetensors',
      'coffee_depth.png',
      'coffee_depth16.png',
    ]);
  });

  it('builds the task switcher and processing sizes as the original', () => {
    assert.deepEqual(
      [...taskEmbedding('annotation').data],
      [Math.fround(Math.sin(1)), 0, Math.fround(Math.cos(1)), 1],
    );
    assert.deepEqual(
      [...taskEmbedding('rgb').data],
      [0, Math.fround(Math.sin(1)), 1, Math.fround(Math.cos(1))],
    );
    assert.deepEqual(processingSize(400, 600, 64), { height: 42, width: 64 });
    assert.deepEqual(processingSize(400, 600, 0), { height: 400, width: 600 });
    assert.deepEqual(processingSize(1000, 500, 768), { height: 768, width: 384 });
    assert.throws(() => processingSize(10, 10, -1), ConfigError);
    assert.throws(() => processingSize(10, 10, 1.5), ConfigError);
  });

  it('resizes back with nearest-exact', () => {
    const x = Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]);
    assert.deepEqual([...resizeNearestExact(x, 3, 3).data], [1, 2, 2, 3, 4, 4, 3, 4, 4]); // src = floor((i + 0.5) * 2 / 3)
  });
});

describe('lotus: generated checkpoints, outputs and bad input', () => {
  it('runs Lotus-G (several seeds: uncertainty) and Lotus-D (deterministic) on real photos, grayscale and RGBA', async () => {
    const dir = tempDir();
    await makeTinyCheckpoint(join(dir, 'lotus-depth-g'), { style: 'lotus-g', seed: 1 });
    await makeTinyCheckpoint(join(dir, 'lotus-normal-d'), { style: 'lotus-d', seed: 2 });
    const g = await Lotus.fromModel(join(dir, 'lotus-depth-g'), ON_DEVICE);
    const d = await Lotus.fromModel(join(dir, 'lotus-normal-d'), ON_DEVICE);
    assert.deepEqual([g.variant, g.kind, d.variant, d.kind], ['g', 'depth', 'd', 'normal']);
    const res = await g.predict(join(FIXTURES, 'photos/motorcycle_left.png'), {
      processingRes: 96,
      seeds: [0, 1, 2],
    });
    const { width, height } = await sharp(join(FIXTURES, 'photos/motorcycle_left.png')).metadata();
    assert.deepEqual([...res.depth!.shape], [1, height, width]);
    assert.ok(
      res.uncertainty!.data.some((v) => v > 0),
      'seeds disagree somewhere',
    );
    const gray = await sharp(COFFEE).grayscale().png().toBuffer();
    const rgba = await sharp(COFFEE).ensureAlpha().png().toBuffer();
    const n1 = await d.predict(gray, { processingRes: 64 });
    const n2 = await d.predict(gray, { processingRes: 64 });
    assert.deepEqual(
      n1.normal!.data,
      n2.normal!.data,
      'Lotus-D is deterministic for a seed (no noise input; the VAE posterior sample is seeded)',
    );
    const len = Math.hypot(n1.normal!.data[0], n1.normal!.data[1], n1.normal!.data[2]);
    assert.ok(Math.abs(len - 1) < 1e-5, 'unit normals');
    // native size: a 600-pixel VAE pass, minutes on a software GPU for nothing the CPU run misses
    if (TEST_DEVICE === 'cpu')
      assert.equal(
        (await d.predict(rgba, { processingRes: 0 })).normal!.shape[2],
        600,
        'native size with processing res 0',
      );
    else assert.equal((await d.predict(rgba, { processingRes: 64 })).normal!.shape[2], 600, 'resized back');
    await Promise.all([g.dispose(), d.dispose()]);
  });

  it('refuses checkpoints without a task switcher', async () => {
    const e = await rejectsWith(Lotus.fromModel(join(REFERENCE, 'tiny-sd15')), ModelError);
    assert.match(e.message, /class_embed_type null .* Lotus needs "projection"/);
  });

  it('aligns and scores depth and normals (known by construction)', () => {
    const gt = Float32Array.from({ length: 100 }, (_, i) => 1 + (i % 10) * 0.3);
    const pred = gt.map((v) => (v - 0.5) / 2.5); // an exact affine transform of the truth
    const { scale, shift } = alignScaleShift(pred, gt);
    assert.ok(Math.abs(scale - 2.5) < 1e-4 && Math.abs(shift - 0.5) < 1e-4);
    const m = depthMetrics(pred, gt);
    assert.ok(m.absRel < 1e-6 && m.delta1 === 1);
    const disp = gt.map((v) => 3 / v + 0.2); // affine in disparity
    assert.ok(depthMetrics(disp, gt, { disparity: true }).absRel < 1e-5);
    const up = new Float32Array(30).map((_, i) => (i % 3 === 2 ? 1 : 0));
    const tilted = up.map((_, i) =>
      i % 3 === 0 ? Math.sin(Math.PI / 18) : i % 3 === 2 ? Math.cos(Math.PI / 18) : 0,
    ); // 10 degrees
    const nm = normalMetrics(tilted, up);
    assert.ok(Math.abs(nm.meanAngle - 10) < 1e-4);
    assert.deepEqual([nm.within11_25, nm.within22_5, nm.within30], [1, 1, 1]);
  });

  it('writes and reads 16-bit PNG depth', async () => {
    const path = join(tempDir(), 'd.png');
    const depth = Tensor.from([0, 0.25, 0.5, 1], [1, 2, 2]);
    await saveDepth16(path, depth);
    const back = await readDepthPng(path, 65535);
    back.data.forEach((v, i) => assert.ok(Math.abs(v - depth.data[i]) < 1e-4));
  });
});
