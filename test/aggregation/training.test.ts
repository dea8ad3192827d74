/**
 * Training on real photos with exact ground truth: each photo and its mirror image, so the
 * true correspondence of grid cell (y, x) is (y, R-1-x). Held-out photos measure PCK; the
 * untrained network cannot match mirrored content, a trained one must.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadStableDiffusion } from '../../sdk/diffusion/pipeline.ts';
import { invertImages } from '../../sdk/diffusion/extract.ts';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { trainNetwork, type TrainingPair } from '../../sdk/aggregation/train/loop.ts';
import { mirroredPairs } from '../../sdk/aggregation/train/mirror.ts';
import { gridPck } from '../../sdk/correspondence/grid-pck.ts';
import type { Tensor } from '../../sdk/core/tensor.ts';
import { captureLogs } from '../../sdk/core/logger.ts';
import { FIXTURES, REFERENCE, rejectsWith } from '../helpers.ts';
import { DataError } from '../../sdk/core/errors.ts';

const R = 16;

describe('aggregation training on mirrored real photos', () => {
  let pairs: TrainingPair[];
  let dims: number[];
  before(async () => {
    const spair = join(FIXTURES, 'spair/JPEGImages');
    const paths = [
      ...readdirSync(join(FIXTURES, 'photos')).map((f) => join(FIXTURES, 'photos', f)),
      ...readdirSync(spair).flatMap((c) => readdirSync(join(spair, c)).map((f) => join(spair, c, f))),
    ];
    const sd = await loadStableDiffusion(join(REFERENCE, 'tiny-sd15'));
    const extract = { steps: 1, loadSize: 128, imageSize: 128, cache: false as const };
    pairs = await mirroredPairs(sd, paths, { resolution: R, points: 40, seed: 1, extract });
    dims = (await invertImages(sd, [paths[0]], extract))[0].channels();
    await sd.dispose();
  });

  it('raises held-out PCK@0.1 clearly above the untrained network', async () => {
    // the known mirror correspondence holds by construction
    for (const p of pairs) p.source.forEach(([y, x], k) => assert.deepEqual(p.target[k], [y, R - 1 - x]));
    const [train, held] = [pairs.slice(0, 12), pairs.slice(12)];
    const net = AggregationNetwork.create(
      { featureDims: dims, saveTimesteps: [0], projectionDim: 128, numNormGroups: 32 },
      0,
    );
    const pck = () => gridPck(net, held);
    const { result: h } = await captureLogs(() =>
      trainNetwork(net, train, { steps: 100, validate: pck, validateEvery: 100 }),
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
    const good = pairs[0].features as Tensor;
    // a NaN in the data is a DataError naming the tensor, before any step
    const bad = good.map((v, i) => (i === 7 ? NaN : v));
    const before = new Map([...net.params].map(([k, v]) => [k, v.data.slice()]));
    const e = await rejectsWith(
      trainNetwork(net, [{ features: bad, source: [[1, 1]], target: [[1, 14]] }], { steps: 3 }),
      DataError,
    );
    assert.match(
      e.message,
      /training pair 0: features: 1 of \d+ values are not finite \(first: NaN at index 7\)/,
    );
    for (const [k, v] of net.params) assert.deepEqual(v.data, before.get(k));
    // a loss that diverges (features so large the logits overflow) stops the loop instead
    const huge = good.map((v) => v * 1e38);
    const { result: h, records } = await captureLogs(() =>
      trainNetwork(net, [{ features: huge, source: [[1, 1]], target: [[1, 14]] }], { steps: 3 }),
    );
    assert.equal(h.stoppedAt, 1);
    assert.ok(
      records.some((r) => r.level === 'error' && /stopped at step 1: non-finite loss/.test(r.message)),
    );
    for (const [k, v] of net.params) assert.deepEqual(v.data, before.get(k));
  });
});
