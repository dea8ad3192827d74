/**
 * The layer-by-layer training step with batches: a batch's gradient is the mean of its pairs'
 * gradients (the original averages the loss over the batch), and FeatureStack inputs (maps at
 * their own sizes, resized per layer) give what the pre-stacked tensor gives.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { Trainer } from '../../sdk/aggregation/train/trainer.ts';
import { FeatureStack } from '../../sdk/diffusion/feature-stack.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor, relativeError } from '../../sdk/core/tensor.ts';
import { REFERENCE, tempDir } from '../helpers.ts';
import { runTraining } from '../../sdk/aggregation/train/run.ts';
import { captureLogs } from '../../sdk/core/logger.ts';
import { SafetensorsReader } from '../../sdk/core/safetensors.ts';

const CASES = join(REFERENCE, 'cases');

describe('aggregation training: batches and feature stacks', () => {
  const rng = new Rng(3);
  let base: AggregationNetwork;
  const clone = () => new AggregationNetwork(base.config, new Map(base.params));
  const meta = { model: 'x', mode: 'inversion' as const, steps: 50, imageSize: 64, seed: null };
  // raw maps at decoder-like sizes (4, 4, 8 pixels for the 96, 64, 32-channel layers)
  const stack = () =>
    new FeatureStack(
      base.config.saveTimesteps,
      base.config.featureDims.map((_, l) => l + 1),
      base.config.saveTimesteps.map(() =>
        base.config.featureDims.map((c) => {
          const h = c === 96 ? 4 : c === 64 ? 8 : 16;
          return new Tensor(rng.normalArray(c * h * h), [1, c, h, h]);
        }),
      ),
      meta,
    );
  const points = (n: number): [number, number][] => Array.from({ length: n }, () => [rng.int(8), rng.int(8)]);

  let calls = 0;
  before(async () => {
    base = await AggregationNetwork.load(join(CASES, 'aggregation_network.pt'));
  });

  it("a batch's gradients are the mean of its pairs' gradients", async () => {
    const pairs = [0, 1].map(() => ({
      features: [stack(), stack()] as const,
      source: points(5),
      target: points(5),
    }));
    const grads = async (batch: typeof pairs) => {
      const t = new Trainer(clone(), { resolution: 8 });
      const r = await t.trainBatch(batch);
      await t.dispose();
      assert.ok(r.applied);
      return r;
    };
    const both = await grads(pairs);
    const [g1, g2] = [await grads([pairs[0]]), await grads([pairs[1]])];
    assert.ok(Math.abs(both.loss - (g1.loss + g2.loss) / 2) < 1e-5 * both.loss);
    assert.equal(both.grads.size, 145);
    for (const [name, g] of both.grads) {
      const mean = g1.grads.get(name)!.map((v, i) => (v + g2.grads.get(name)!.data[i]) / 2);
      const rel = relativeError(g.data, mean.data);
      assert.ok(rel < 1e-5, `${name}: relative error ${rel}`);
    }
  });

  it('a run that meets a non-finite loss stops, keeps the last good checkpoint and says which step', async () => {
    const out = tempDir();
    const good = { features: [stack(), stack()] as const, source: points(3), target: points(3) };
    const huge = (s: FeatureStack) =>
      new FeatureStack(
        s.saveTimesteps,
        s.layers,
        s.maps.map((row) => row.map((m) => m.map((v) => v * 1e37))),
        meta,
      );
    const bad = {
      features: [huge(good.features[0]), huge(good.features[1])] as const,
      source: good.source,
      target: good.target,
    };
    const net = clone();
    const { result, records } = await captureLogs(() =>
      runTraining(net, {
        out,
        steps: 3,
        batchSize: 1,
        valEvery: 0,
        checkpointEvery: 1,
        seed: 0,
        resolution: 8,
        resume: false,
        settings: { test: 1 },
        examples: { count: 1, get: async () => (calls++ === 0 ? good : bad) },
      }),
    );
    assert.equal(result.stoppedAt, 2);
    assert.equal(result.step, 1);
    assert.ok(
      records.some((r) => r.level === 'error' && /stopped at step 2: non-finite loss/.test(r.message)),
    );
    const saved = await AggregationNetwork.load(join(out, 'aggregation_network.safetensors'));
    for (const [name, t] of net.params) assert.deepEqual(saved.params.get(name)!.data, t.data, name);
    const r = await SafetensorsReader.open(join(out, 'train_state.safetensors'));
    assert.equal(r.metadata.step, '1', 'the state is the last good step');
    await r.close();
  });

  it('FeatureStack inputs train exactly like the pre-stacked, pre-resized tensor', async () => {
    const [a, b] = [stack(), stack()];
    const tensor = new Tensor(new Float32Array([...a.concat(8).data, ...b.concat(8).data]), [
      2,
      a.concat(8).shape[1],
      8,
      8,
    ]);
    const [src, tgt] = [points(4), points(4)];
    const t1 = new Trainer(clone(), { resolution: 8 });
    const t2 = new Trainer(clone());
    const r1 = await t1.trainStep([a, b], src, tgt);
    const r2 = await t2.trainStep(tensor, src, tgt);
    assert.equal(r1.loss, r2.loss);
    for (const [name, g] of r1.grads) assert.deepEqual(g.data, r2.grads.get(name)!.data, name);
    await Promise.all([t1.dispose(), t2.dispose()]);
  });
});
