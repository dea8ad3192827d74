/**
 * The aggregation network with extra maps (ours+dinov2: DINOv2 blocks beside the diffusion
 * features, one bottleneck and one jointly softmaxed mixing weight each), checked by
 * construction against the diffusion-only network: masking the extra weight gives the
 * diffusion-only output; masking the diffusion weights gives the extra map's bottleneck alone,
 * which equals a one-layer diffusion network holding the same parameters.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AggregationNetwork } from '../../sdk/aggregation/network.ts';
import { extraKey, layerKey } from '../../sdk/aggregation/config.ts';
import { FeatureStack } from '../../sdk/diffusion/feature-stack.ts';
import { Rng } from '../../sdk/core/rng.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { writeSafetensors } from '../../sdk/core/safetensors.ts';
import { ConfigError, ModelError, ShapeError } from '../../sdk/core/errors.ts';
import { rejectsWith, tempDir } from '../helpers.ts';
import { Trainer } from '../../sdk/aggregation/train/trainer.ts';
import { mixingSharesSpec } from '../../sdk/viz/charts.ts';

const DIMS = [16, 8];
const STEPS = [1, 0];
const EXTRA = { name: 'dinov2:block2:token', dim: 12 };
const R = 8;
const rand = (seed: number, shape: number[]) =>
  new Tensor(new Rng(seed).normalArray(shape.reduce((a, b) => a * b, 1)), shape);
const meta = { model: 'test', mode: 'inversion' as const, steps: 2, imageSize: 64, seed: 0 };
const stackOf = (seed: number) =>
  new FeatureStack(
    STEPS,
    [1, 2],
    STEPS.map((_, s) => DIMS.map((d, l) => rand(seed + 10 * s + l, [1, d, R, R]))),
    meta,
  );

function withParams(net: AggregationNetwork, changes: [string, Tensor][]): AggregationNetwork {
  return new AggregationNetwork(net.config, new Map([...net.params, ...changes]));
}

function maxDiff(a: Tensor, b: Tensor): number {
  return Math.max(...Array.from(a.data, (v, i) => Math.abs(v - b.data[i])));
}

describe('aggregation network with extra maps (ours+dinov2)', () => {
  const base = { featureDims: DIMS, saveTimesteps: STEPS, projectionDim: 128, numNormGroups: 32, steps: 2 };
  const net = AggregationNetwork.create({ ...base, extraMaps: [EXTRA] }, 3);
  const stacks = [stackOf(1), stackOf(2)];
  const extras = [[rand(50, [1, 12, 4, 4])], [rand(51, [1, 12, 6, 6])]];

  it('with the extra weight masked, equals the diffusion-only network; the weights are one joint softmax', async () => {
    const sdOnly = new AggregationNetwork(
      base,
      new Map([...net.params].filter(([k]) => !k.startsWith('extra_'))),
    );
    const masked = withParams(net, [['extra_mixing_weights', new Tensor(Float32Array.from([-1e30]), [1])]]);
    const a = await masked.aggregate(stacks, R, extras);
    const b = await sdOnly.aggregate(stacks, R);
    assert.ok(maxDiff(a, b) < 1e-6, `${maxDiff(a, b)}`);
    const all = [
      ...net.mixingWeights().map((w) => w.weight),
      ...net.extraMixingWeights().map((w) => w.weight),
    ];
    assert.ok(Math.abs(all.reduce((x, y) => x + y, 0) - 1) < 1e-6);
    assert.deepEqual(
      net.extraMixingWeights().map((w) => w.name),
      [EXTRA.name],
    );
    assert.ok(Math.abs(net.extraMixingWeights()[0].weight - 1 / 5) < 1e-6); // 4 maps + 1, all logits 1
    // the share chart: the diffusion maps together, then the DINOv2 map
    const shares = (mixingSharesSpec(net) as { data: { values: { source: string; share: number }[] } }).data
      .values;
    assert.deepEqual(
      shares.map((r) => [r.source, +r.share.toFixed(6)]),
      [
        ['Stable Diffusion (all layers x timesteps)', 0.8],
        ['dinov2:block2:token', 0.2],
      ],
    );
    await Promise.all([masked, sdOnly].map((n) => n.dispose()));
  });

  it("with the diffusion weights masked, is the extra map's bottleneck: a one-map network with its parameters", async () => {
    const masked = withParams(net, [['mixing_weights', new Tensor(new Float32Array(4).fill(-1e30), [4])]]);
    const one = new AggregationNetwork(
      { featureDims: [EXTRA.dim], saveTimesteps: [0], projectionDim: 128, numNormGroups: 32, steps: 1 },
      new Map<string, Tensor>([
        ['mixing_weights', new Tensor(Float32Array.from([0]), [1])],
        ...[...net.params]
          .filter(([k]) => k.startsWith(extraKey(0, '')))
          .map(([k, v]): [string, Tensor] => [layerKey(0, k.slice(extraKey(0, '').length)), v]),
      ]),
    );
    const a = await masked.aggregate(stacks, R, extras);
    const extraStack = (m: Tensor) => new FeatureStack([0], [1], [[m]], { ...meta, steps: 1 });
    const b = await one.aggregate(
      extras.map((e) => extraStack(e[0])),
      R,
    );
    assert.ok(maxDiff(a, b) < 1e-5, `${maxDiff(a, b)}`);
    await Promise.all([masked, one].map((n) => n.dispose()));
  });

  it('saves and loads its extra maps by name; refuses features that do not fit, naming the difference', async () => {
    const file = join(tempDir(), 'net.safetensors');
    await net.save(file);
    const back = await AggregationNetwork.load(file);
    assert.deepEqual(back.config.extraMaps, [EXTRA]);
    const x = await back.aggregate(stacks, R, extras);
    const y = await net.aggregate(stacks, R, extras);
    assert.deepEqual(Array.from(x.data), Array.from(y.data));
    let e = await rejectsWith(net.aggregate(stacks, R), ShapeError);
    assert.match(
      e.message,
      /also mixes dinov2:block2:token: expected those maps for each of the 2 image\(s\), got none/,
    );
    e = await rejectsWith(net.aggregate(stacks, R, [[rand(1, [1, 7, 4, 4])], extras[1]]), ShapeError);
    assert.match(
      e.message,
      /extra map dinov2:block2:token has shape \[1, 7, 4, 4\], expected \[1, 12, h, w\]/,
    );
    const sdOnly = AggregationNetwork.create(base, 1);
    e = await rejectsWith(sdOnly.aggregate(stacks, R, extras), ShapeError);
    assert.match(e.message, /diffusion features only/);
    assert.throws(() => net.pruned(1), ConfigError);
    // a safetensors file whose config lost the names
    const bad = join(tempDir(), 'bad.safetensors');
    await writeSafetensors(bad, Object.fromEntries(net.params), {
      config: JSON.stringify({ dims: DIMS, save_timestep: STEPS }),
    });
    await rejectsWith(AggregationNetwork.load(bad), ModelError);
    await Promise.all([back, net, sdOnly].map((n) => n.dispose()));
  });

  const src: [number, number][] = [
    [1, 2],
    [5, 6],
    [3, 3],
  ];
  const tgt: [number, number][] = [
    [2, 2],
    [4, 7],
    [0, 3],
  ];
  // the trainer updates its network's parameters: each evaluation gets a copy
  const lossOf = async (n: AggregationNetwork) => {
    const t = new Trainer(new AggregationNetwork(n.config, new Map(n.params)), { resolution: R });
    const r = await t.trainBatch([
      { features: [stacks[0], stacks[1]], extras: [extras[0], extras[1]], source: src, target: tgt },
    ]);
    await t.dispose();
    return r;
  };

  it("trains the extra map's bottleneck exactly as a one-map network trains its layer, and its weight by the joint softmax", async () => {
    // diffusion weights masked: the descriptors are the extra bottleneck alone, so its gradients
    // are those of a one-layer network holding the same parameters (whose backward is the
    // parity-tested diffusion path)
    const masked = withParams(net, [['mixing_weights', new Tensor(new Float32Array(4).fill(-1e30), [4])]]);
    const prefix = extraKey(0, '');
    const one = new AggregationNetwork(
      { featureDims: [EXTRA.dim], saveTimesteps: [0], projectionDim: 128, numNormGroups: 32, steps: 1 },
      new Map<string, Tensor>([
        ['mixing_weights', new Tensor(Float32Array.from([0]), [1])],
        ...[...net.params]
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, v]): [string, Tensor] => [layerKey(0, k.slice(prefix.length)), v]),
      ]),
    );
    const a = await lossOf(masked);
    const extraStack = (m: Tensor) => new FeatureStack([0], [1], [[m]], { ...meta, steps: 1 });
    const t = new Trainer(one, { resolution: R });
    const b = await t.trainBatch([
      { features: [extraStack(extras[0][0]), extraStack(extras[1][0])], source: src, target: tgt },
    ]);
    await t.dispose();
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `${a.loss} vs ${b.loss}`);
    for (const [name, g] of b.grads) {
      if (name === 'mixing_weights') continue;
      const mine = a.grads.get(prefix + name.slice(layerKey(0, '').length))!;
      const scale = Math.max(...Array.from(g.data, Math.abs), 1e-8);
      assert.ok(maxDiff(mine, g) <= 1e-4 * scale + 1e-7, name);
    }
    // the extra weight's gradient through the joint softmax, against central differences
    const base0 = await lossOf(net);
    const at = async (d: number) => {
      const p = net.params.get('extra_mixing_weights')!;
      return (
        await lossOf(
          withParams(net, [['extra_mixing_weights', new Tensor(Float32Array.from([p.data[0] + d]), [1])]]),
        )
      ).loss;
    };
    const h = 1e-2;
    const fd = ((await at(h)) - (await at(-h))) / (2 * h);
    const g = base0.grads.get('extra_mixing_weights')!.data[0];
    assert.ok(Math.abs(fd - g) <= 2e-2 * Math.abs(fd), `analytic ${g}, finite differences ${fd}`);
  });

  it('with the extra weight masked, trains exactly like the diffusion-only network', async () => {
    const masked = withParams(net, [['extra_mixing_weights', new Tensor(Float32Array.from([-1e30]), [1])]]);
    const sdOnly = new AggregationNetwork(
      base,
      new Map([...net.params].filter(([k]) => !k.startsWith('extra_'))),
    );
    const a = await lossOf(masked);
    const t = new Trainer(sdOnly, { resolution: R });
    const b = await t.trainBatch([{ features: [stacks[0], stacks[1]], source: src, target: tgt }]);
    await t.dispose();
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `${a.loss} vs ${b.loss}`);
    for (const [name, g] of b.grads) {
      const mine = a.grads.get(name)!;
      const scale = Math.max(...Array.from(g.data, Math.abs), 1e-8);
      assert.ok(maxDiff(mine, g) <= 1e-4 * scale + 1e-7, `${name}`);
    }
    const e = await rejectsWith(
      new Trainer(net, { resolution: R }).trainBatch([
        { features: [stacks[0], stacks[1]], source: src, target: tgt },
      ]),
      ShapeError,
    );
    assert.match(e.message, /also mixes dinov2:block2:token/);
  });
});
