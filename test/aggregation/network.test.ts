import assert from 'node:assert/strict';
import { writeFileSync, truncateSync, statSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipEntries } from '../../sdk/core/zip.ts';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { torchLoad, unpickle } from '../../sdk/aggregation/torch-load.ts';
import { Trainer, pointsToIndices, roundHalfEven } from '../../sdk/aggregation/train/trainer.ts';
import { buildAdamWGraph, adamwScalarFeeds } from '../../sdk/aggregation/train/adamw.ts';
import { FeatureStack } from '../../sdk/diffusion/feature-stack.ts';
import { readAllSafetensors, writeSafetensors } from '../../sdk/core/safetensors.ts';
import { Session } from '../../sdk/model/runtime.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { ConfigError, DataError, ModelError, ShapeError } from '../../sdk/core/errors.ts';
import { REFERENCE, assertClose, rejectsWith, tempDir, tolerance, ON_DEVICE } from '../helpers.ts';

const CASES = join(REFERENCE, 'cases');

/** A stored (uncompressed) zip with the given entries, as torch.save writes. */
function zipOf(entries: Record<string, Buffer>): Buffer {
  return Buffer.concat(zipEntries(Object.entries(entries).map(([name, data]) => ({ name, data }))));
}

function points(t: Map<string, Tensor>, name: string): [number, number][] {
  const d = t.get(name)!.data;
  return Array.from({ length: d.length / 2 }, (_, i) => [d[2 * i], d[2 * i + 1]]);
}

describe('aggregation network', () => {
  let ref: Map<string, Tensor>;
  before(async () => {
    ref = (await readAllSafetensors(join(CASES, 'aggregation.safetensors'))).tensors;
  });

  for (const file of ['aggregation_network.pt', 'aggregation_network.safetensors']) {
    it(`loads the original network from ${file}, infers its config and matches its forward`, async () => {
      const net = await AggregationNetwork.load(join(CASES, file), ON_DEVICE);
      assert.deepEqual(net.config, {
        featureDims: [96, 96, 96, 96, 96, 96, 64, 64, 64, 32, 32, 32],
        saveTimesteps: [49, 25, 0],
        projectionDim: 128,
        numNormGroups: 32,
        steps: 50, // the checkpoint config's num_timesteps
      });
      assertClose(
        await net.forward(ref.get('features')!),
        ref.get('descriptors')!,
        tolerance('aggregation', 'descriptors'),
        'descriptors',
      );
      await net.dispose();
    });
  }

  it('matches the loss, every gradient and two AdamW steps of the original training code', async () => {
    const net = await AggregationNetwork.load(join(CASES, 'aggregation_network.pt'), ON_DEVICE);
    const trainer = new Trainer(net, { lr: 1e-3, weightDecay: 0 });
    const src = points(ref, 'source_points');
    const tgt = points(ref, 'target_points');
    const r = await trainer.trainStep(ref.get('features')!, src, tgt);
    assert.ok(
      Math.abs(r.loss - ref.get('loss')!.data[0]) / ref.get('loss')!.data[0] <=
        tolerance('aggregation', 'loss'),
    );
    assert.equal(r.grads.size, 145);
    for (const [name, grad] of r.grads)
      assertClose(grad, ref.get(`grad.${name}`)!, tolerance('aggregation', `grad.${name}`), `grad.${name}`);
    for (const [name, p] of net.params)
      assertClose(
        p,
        ref.get(`after1.${name}`)!,
        tolerance('aggregation', `after1.${name}`),
        `after1.${name}`,
      );
    await trainer.trainStep(ref.get('features')!, src, tgt);
    for (const [name, p] of net.params)
      assertClose(
        p,
        ref.get(`after2.${name}`)!,
        tolerance('aggregation', `after2.${name}`),
        `after2.${name}`,
      );
    await trainer.dispose();
  });

  it('AdamW matches torch.optim.AdamW exactly (weight decay 0 and 0.01, three steps)', async () => {
    const { tensors: t } = await readAllSafetensors(join(CASES, 'adamw.safetensors'));
    const s = await Session.create(await buildAdamWGraph([64]).serialize());
    for (const wd of [0, 0.01]) {
      let [param, m, v] = [t.get('param')!, Tensor.zeros([64]), Tensor.zeros([64])];
      for (let step = 1; step <= 3; step++) {
        const out = await s.run({
          param,
          grad: t.get(`grad${step}`)!,
          m,
          v,
          ...adamwScalarFeeds({ lr: 1e-3, weightDecay: wd, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, step),
        });
        [param, m, v] = [out.new_param, out.new_m, out.new_v];
        const name = `wd${wd === 0 ? '0.0' : wd}_after${step}`;
        assertClose(param, t.get(name)!, tolerance('adamw', name), name);
      }
    }
    await s.dispose();
  });

  it('maps keypoints to grid indices like points_to_idxs (clip, round half to even)', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, 3.4999].map(roundHalfEven), [0, 2, 2, -0, 3]);
    assert.deepEqual(
      pointsToIndices(
        [
          [0, 0],
          [3.5, 2.5],
          [9, -1],
          [4.5, 0.4],
        ],
        8,
        8,
      ),
      [0, 8 * 4 + 2, 8 * 7 + 0, 8 * 4 + 0],
    );
  });

  it('exposes the mixing weights as a named table and top-k pairs', async () => {
    const net = await AggregationNetwork.load(join(CASES, 'aggregation_network.safetensors'));
    const w = net.mixingWeights();
    assert.equal(w.length, 36);
    assert.ok(Math.abs(w.reduce((a, b) => a + b.weight, 0) - 1) < 1e-9);
    assert.deepEqual([w[0].saveTimestep, w[0].layer, w[13].saveTimestep, w[13].layer], [49, 1, 25, 2]);
    const top = net.topMixingWeights(3);
    assert.ok(top[0].weight >= top[1].weight && top[1].weight >= top[2].weight);
  });

  it('round-trips through safetensors and reports stacks that do not fit', async () => {
    const net = await AggregationNetwork.load(join(CASES, 'aggregation_network.pt'));
    const path = join(tempDir(), 'net.safetensors');
    await net.save(path);
    const back = await AggregationNetwork.load(path);
    assert.deepEqual(back.config, net.config);
    const maps = [49, 25].map(() => [96, 64].map((c) => Tensor.zeros([1, c, 4, 4])));
    const stack = new FeatureStack([49, 25], [1, 7], maps, {
      model: 'x',
      mode: 'inversion',
      steps: 50,
      imageSize: 64,
      seed: null,
    });
    const e = await rejectsWith(back.aggregate([stack], 8), ShapeError);
    assert.match(e.message, /save timesteps \[49, 25\] but the network was trained on \[49, 25, 0\]/);
    assert.match(e.message, /layer channels \[96, 64\] but the network expects \[96, 96, 96/);
  });

  it('refuses pickles with disallowed globals and never executes them', () => {
    const evil = Buffer.concat([
      Buffer.from([0x80, 0x02]),
      Buffer.from('cos\nsystem\n'),
      Buffer.from([0x58, 4, 0, 0, 0]),
      Buffer.from('echo'),
      Buffer.from([0x85, 0x52, 0x2e]),
    ]);
    assert.throws(
      () => unpickle(evil, 'evil.pt', () => Buffer.alloc(0)),
      (e: Error) => e instanceof DataError && /refusing pickle global "os.system"/.test(e.message),
    );
    const dir = tempDir();
    const path = join(dir, 'evil.pt');
    writeFileSync(path, zipOf({ 'archive/data.pkl': evil }));
    assert.throws(() => torchLoad(path), /refusing pickle global "os.system"/);
  });

  it('reports truncated archives, non-state-dict content and mismatched shapes', async () => {
    const dir = tempDir();
    const trunc = join(dir, 'trunc.pt');
    copyFileSync(join(CASES, 'aggregation_network.pt'), trunc);
    truncateSync(trunc, statSync(trunc).size - 300);
    await rejectsWith(AggregationNetwork.load(trunc), DataError);
    const list = join(dir, 'list.pt');
    writeFileSync(
      list,
      zipOf({ 'archive/data.pkl': Buffer.from([0x80, 0x02, 0x5d, 0x4b, 0x01, 0x61, 0x2e]) }),
    ); // [1]
    await rejectsWith(AggregationNetwork.load(list), DataError).then((e) =>
      assert.match(e.message, /expected a state dict/),
    );
    const { tensors } = await readAllSafetensors(join(CASES, 'aggregation_network.safetensors'));
    tensors.set('bottleneck_layers.3.0.conv2.weight', Tensor.zeros([32, 32, 1, 1]));
    const bad = join(dir, 'bad.safetensors');
    await writeSafetensors(bad, Object.fromEntries(tensors), {
      config: JSON.stringify({ save_timestep: [49, 25, 0] }),
    });
    const unknown = join(dir, 'unknown.safetensors');
    await writeSafetensors(
      unknown,
      Object.fromEntries((await readAllSafetensors(join(CASES, 'aggregation_network.safetensors'))).tensors),
      { config: JSON.stringify({ save_timestep: [49, 25, 0], mixing_temperature: 2 }) },
    );
    await rejectsWith(AggregationNetwork.load(unknown), ConfigError).then((e) =>
      assert.match(e.message, /unknown config fields mixing_temperature/),
    );
    await rejectsWith(AggregationNetwork.load(bad), ModelError).then((e) =>
      assert.match(
        e.message,
        /bottleneck_layers.3.0.conv2.weight has shape \[32, 32, 1, 1\], expected \[32, 32, 3, 3\]/,
      ),
    );
  });
});
