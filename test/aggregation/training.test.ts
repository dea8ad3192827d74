/**
 * Training on real photos with exact ground truth: each photo and its mirror image, so the
 * true correspondence of grid cell (y, x) is (y, R-1-x). Held-out photos measure PCK; the
 * untrained network cannot match mirrored content, a trained one must.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadStableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { invertImages } from '../../sdk/diffusion/extract.ts';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { trainNetwork } from '../../sdk/aggregation/train/loop.ts';
import { matchPoints, type PointYX } from '../../sdk/correspondence/match.ts';
import { Tensor, concat } from '../../sdk/core/tensor.ts';
import { decodeImage, type RgbImage } from '../../sdk/data/image.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { captureLogs } from '../../sdk/core/logger.ts';
import { FIXTURES, REFERENCE } from '../helpers.ts';

const R = 16;

async function mirrored(path: string): Promise<RgbImage> {
  const d = await decodeImage(path);
  const { data, info } = await sharp(d.data, { raw: { width: d.width, height: d.height, channels: 3 } })
    .flop()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

describe('aggregation training on mirrored real photos', () => {
  let feats: Tensor[];
  let dims: number[];
  before(async () => {
    const spair = join(FIXTURES, 'spair/JPEGImages');
    const paths = [
      ...readdirSync(join(FIXTURES, 'photos')).map((f) => join(FIXTURES, 'photos', f)),
      ...readdirSync(spair).flatMap((c) => readdirSync(join(spair, c)).map((f) => join(spair, c, f))),
    ];
    const sd = await loadStableDiffusion(join(REFERENCE, 'tiny-sd15'));
    const o = { steps: 1, loadSize: 128, imageSize: 128, cache: false as const };
    const a = await invertImages(sd, paths, o);
    const b = await invertImages(sd, await Promise.all(paths.map(mirrored)), o);
    await sd.dispose();
    dims = a[0].channels();
    feats = a.map((s, i) => concat([s.concat(R), b[i].concat(R)], 0));
  });

  it('raises held-out PCK@0.1 clearly above the untrained network', async () => {
    const rng = new Rng(1);
    const points = (n: number) => Array.from({ length: n }, (): PointYX => [rng.int(R), rng.int(R)]);
    const mirror = (p: PointYX[]) => p.map(([y, x]): PointYX => [y, R - 1 - x]);
    const [train, held] = [feats.slice(0, 12), feats.slice(12)];
    const heldPoints = held.map(() => points(30));
    const net = AggregationNetwork.create(
      { featureDims: dims, saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
      0,
    );
    const pck = async () => {
      let ok = 0;
      let n = 0;
      for (const [i, f] of held.entries()) {
        const d = await net.forward(f);
        const gt = mirror(heldPoints[i]);
        for (const [k, m] of matchPoints(d.sliceFirst(0), d.sliceFirst(1), heldPoints[i]).entries()) {
          n++;
          if (Math.hypot(m.target[0] - gt[k][0], m.target[1] - gt[k][1]) <= 0.1 * R) ok++;
        }
      }
      return ok / n;
    };
    const pairs = train.map((features) => {
      const s = points(40);
      return { features, source: s, target: mirror(s) };
    });
    const { result: h } = await captureLogs(() =>
      trainNetwork(net, pairs, { steps: 100, validate: pck, validateEvery: 100 }),
    );
    const [before, after] = [h.validations[0].score, h.validations[h.validations.length - 1].score];
    assert.ok(before < 0.25, `untrained PCK ${before}`);
    assert.ok(after > before + 0.3, `trained PCK ${after} vs untrained ${before}`);
    assert.ok(h.losses[h.losses.length - 1] < h.losses[0] * 0.7, 'loss falls');
  });

  it('stops on a non-finite loss, keeps the last good parameters and says which step', async () => {
    const net = AggregationNetwork.create(
      { featureDims: dims, saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
      0,
    );
    const good = feats[0];
    const bad = good.map((v, i) => (i === 7 ? NaN : v));
    const before = new Map([...net.params].map(([k, v]) => [k, v.data.slice()]));
    const { result: h, records } = await captureLogs(() =>
      trainNetwork(net, [{ features: bad, source: [[1, 1]], target: [[1, 14]] }], { steps: 3 }),
    );
    assert.equal(h.stoppedAt, 1);
    assert.ok(
      records.some((r) => r.level === 'error' && /stopped at step 1: non-finite loss/.test(r.message)),
    );
    for (const [k, v] of net.params) assert.deepEqual(v.data, before.get(k));
  });
});
