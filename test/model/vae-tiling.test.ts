/**
 * Tiled VAE (diffusers' tiled_encode / tiled_decode): the tiling itself on functions with known
 * answers (block averages and nearest upsampling commute with tiling, so the tiled result is
 * exact), the real VAE's tiled result against its untiled one (a bounded difference at the
 * seams), and the automatic choice against the memory budget.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { Vae } from '../../sdk/model/vae/index.ts';
import { tiled } from '../../sdk/model/vae/tiling.ts';
import { demoCheckpoint } from '../../sdk/model/tiny/index.ts';
import { FIXTURES, REFERENCE, runCli, tempDir, ON_DEVICE } from '../helpers.ts';

function blockMean(t: Tensor, k: number): Tensor {
  const [n, c, h, w] = t.shape;
  const [H, W] = [Math.ceil(h / k), Math.ceil(w / k)];
  const out = new Float32Array(n * c * H * W);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) s += t.data[p * h * w + (y * k + i) * w + x * k + j];
        out[(p * H + y) * W + x] = s / (k * k);
      }
  return new Tensor(out, [n, c, H, W]);
}

function nearestUp(t: Tensor, k: number): Tensor {
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(n * c * h * k * w * k);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < h * k; y++)
      for (let x = 0; x < w * k; x++)
        out[(p * h * k + y) * w * k + x] = t.data[p * h * w + Math.floor(y / k) * w + Math.floor(x / k)];
  return new Tensor(out, [n, c, h * k, w * k]);
}

describe('tiled VAE', function () {
  this.timeout(300_000);
  it('tiles exactly where the per-tile function is local (block means down, nearest up)', async () => {
    const x = new Tensor(new Rng(1).normalArray(2 * 96 * 136), [1, 2, 96, 136]);
    const [down] = await tiled(x, 32, 1 / 8, 0.25, async (t) => [blockMean(t, 8)]);
    assert.deepEqual(down.shape, [1, 2, 12, 17]);
    const want = blockMean(x, 8);
    down.data.forEach((v, i) => assert.ok(Math.abs(v - want.data[i]) < 1e-6, `${i}`));
    const z = new Tensor(new Rng(2).normalArray(3 * 10 * 7), [1, 3, 10, 7]);
    const [up] = await tiled(z, 4, 8, 0.25, async (t) => [nearestUp(t, 8)]);
    assert.deepEqual(up.shape, [1, 3, 80, 56]);
    const wantUp = nearestUp(z, 8);
    up.data.forEach((v, i) => assert.ok(Math.abs(v - wantUp.data[i]) < 1e-6, `${i}`));
  });

  it('the real VAE tiled stays close to untiled (seams only), and tiles when the budget says so', async () => {
    const vae = await Vae.load(join(REFERENCE, 'tiny-sd15'), ON_DEVICE);
    try {
      const img = new Tensor(
        new Rng(3).normalArray(3 * 96 * 96).map((v) => Math.tanh(v)),
        [1, 3, 96, 96],
      );
      const [a, b] = [
        await vae.encode(img, { tiling: 'off' }),
        await vae.encode(img, { tiling: { tile: 64 } }),
      ];
      assert.deepEqual(b.mean.shape, a.mean.shape);
      const diff = (x: Tensor, y: Tensor) => {
        const d = Array.from(x.data, (v, i) => Math.abs(v - y.data[i]));
        const scale = Math.max(...Array.from(y.data, Math.abs));
        return { max: Math.max(...d) / scale, mean: d.reduce((s, v) => s + v, 0) / d.length / scale };
      };
      const e = diff(b.mean, a.mean);
      assert.ok(e.mean < 0.1 && e.max < 1, JSON.stringify(e));
      const z = a.mean;
      const [da, db] = [
        await vae.decode(z, { tiling: 'off' }),
        await vae.decode(z, { tiling: { tile: 64 } }),
      ];
      assert.deepEqual(db.shape, da.shape);
      const d = diff(db, da);
      assert.ok(d.mean < 0.1 && d.max < 1, JSON.stringify(d));
      assert.ok(d.max > 0, 'tiles differ at the seams (the test would be vacuous otherwise)');
      // automatic: untiled within the budget, tiles of at most 512 above it
      assert.equal(vae.tilesFor(96, 96), undefined);
      const small = await Vae.load(join(REFERENCE, 'tiny-sd15'), {
        memoryBudget: vae.estimateBytes(64, 64),
        ...ON_DEVICE,
      });
      assert.equal(small.tilesFor(64, 64), undefined);
      assert.deepEqual(small.tilesFor(96, 96), { tile: 64, overlap: 0.25 });
      // a caller's own budget (Lotus: what its resident weights leave of its target) decides instead
      assert.deepEqual(vae.tilesFor(1024, 1024, 'auto', vae.estimateBytes(400, 400)), {
        tile: 384,
        overlap: 0.25,
      });
      assert.equal(vae.tilesFor(96, 96, 'auto', vae.estimateBytes(96, 96)), undefined);
      assert.ok(small.weightBytes > 0 && small.weightBytes === vae.weightBytes);
      await small.dispose();
    } finally {
      await vae.dispose();
    }
  });
});

describe('lotus --vae-tile', () => {
  it('is checked before any work, and tiles on request', async () => {
    const model = await demoCheckpoint('lotus-g', 'lotus-depth-g-demo');
    const img = join(FIXTURES, 'photos/coffee.png');
    const bad = await runCli([
      'lotus',
      '--model',
      model,
      img,
      '--task',
      'depth',
      '--out',
      tempDir(),
      '--vae-tile',
      '100',
    ]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.err,
      /--vae-tile: expected auto, off or a tile size in pixels \(a multiple of 32\), got "100"/,
    );
    const ok = await runCli([
      'lotus',
      '--model',
      model,
      img,
      '--task',
      'depth',
      '--processing-res',
      '96',
      '--out',
      tempDir(),
      '--vae-tile',
      '64',
    ]);
    assert.equal(ok.code, 0, ok.err);
  });
});
