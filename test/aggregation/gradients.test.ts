/**
 * Every backward op of the training graph against central finite differences: for a
 * scalar L = sum(f(x) * R) with fixed random R, the op's backward with dy = R must give dL/dx.
 */
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../sdk/model/onnx/graph.ts';
import { Session } from '../../sdk/model/runtime.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { Rng } from '../../sdk/core/rng.ts';
import * as ops from '../../sdk/aggregation/train/ops.ts';

type Inputs = Record<string, { shape: number[]; grad: boolean }>;

/**
 * `build` returns the forward output and the gradient value names (dL/d input) given the
 * dy input "R". Checks analytic vs numeric gradients at a few random coordinates.
 */
async function checkGradients(
  inputs: Inputs,
  build: (
    g: GraphBuilder,
    x: Record<string, string>,
    dy: string,
  ) => { y: string; grads: Record<string, string> },
  yShape: number[],
  seed = 0,
) {
  const g = new GraphBuilder();
  const x = Object.fromEntries(Object.entries(inputs).map(([n, s]) => [n, g.input(n, s.shape)]));
  const dy = g.input('R', yShape);
  const { y, grads } = build(g, x, dy);
  g.output('L', g.op('ReduceSum', [g.op('Mul', [y, dy])], { keepdims: 0 }), []);
  for (const [n, v] of Object.entries(grads)) g.output(`d_${n}`, v, inputs[n].shape);
  const s = await Session.create(await g.serialize());
  const rng = new Rng(seed);
  const feeds: Record<string, Tensor> = Object.fromEntries(
    Object.entries(inputs).map(([n, sp]) => [
      n,
      new Tensor(rng.normalArray(sp.shape.reduce((a, b) => a * b, 1)), sp.shape),
    ]),
  );
  feeds.R = new Tensor(rng.normalArray(yShape.reduce((a, b) => a * b, 1)), yShape);
  const out = await s.run(feeds);
  for (const name of Object.keys(grads)) {
    const analytic = out[`d_${name}`];
    const base = feeds[name];
    const scale = Math.max(...analytic.data.map(Math.abs));
    for (let trial = 0; trial < 6; trial++) {
      const i = rng.int(base.size);
      const h = 1e-2;
      const at = async (delta: number) => {
        const moved = base.map((v, j) => (j === i ? v + delta : v));
        return (await s.run({ ...feeds, [name]: moved })).L.data[0];
      };
      const numeric = ((await at(h)) - (await at(-h))) / (2 * h);
      const err = Math.abs(numeric - analytic.data[i]) / Math.max(scale, 1e-6);
      assert.ok(
        err < 2e-2,
        `d${name}[${i}]: analytic ${analytic.data[i]}, numeric ${numeric} (rel ${err.toExponential(2)})`,
      );
    }
  }
  await s.dispose();
}

describe('aggregation training: backward ops vs finite differences', () => {
  for (const k of [1, 3]) {
    it(`conv ${k}x${k}: dx and dw`, () =>
      checkGradients(
        { x: { shape: [2, 3, 5, 5], grad: true }, w: { shape: [4, 3, k, k], grad: true } },
        (g, v, dy) => {
          const b = ops.convBackward(g, v.x, v.w, dy, k, true);
          return { y: ops.convForward(g, v.x, v.w, k), grads: { x: b.dx!, w: b.dw } };
        },
        [2, 4, 5, 5],
      ));
  }

  it('GroupNorm: dx, dgamma, dbeta', () =>
    checkGradients(
      {
        x: { shape: [2, 8, 3, 3], grad: true },
        gamma: { shape: [8], grad: true },
        beta: { shape: [8], grad: true },
      },
      (g, v, dy) => {
        const s = ops.groupNormForward(g, v.x, v.gamma, v.beta, 4, 1e-5);
        const b = ops.groupNormBackward(g, s, v.gamma, dy, 4);
        return { y: s.out, grads: { x: b.dx, gamma: b.dgamma, beta: b.dbeta } };
      },
      [2, 8, 3, 3],
    ));

  it('ReLU', () =>
    checkGradients(
      { x: { shape: [50], grad: true } },
      (g, v, dy) => {
        const y = g.op('Relu', [v.x]);
        return { y, grads: { x: ops.reluBackward(g, y, dy) } };
      },
      [50],
      3,
    ));

  it('row L2 normalisation', () =>
    checkGradients(
      { f: { shape: [6, 5], grad: true } },
      (g, v, dy) => {
        const n = ops.normalizeForward(g, v.f);
        return { y: n.u, grads: { f: ops.normalizeBackward(g, n.u, n.norm, dy) } };
      },
      [6, 5],
    ));

  it('softmax over the mixing weights', () =>
    checkGradients(
      { m: { shape: [7], grad: true } },
      (g, v, dy) => {
        const w = g.op('Softmax', [v.m], { axis: 0 });
        return { y: w, grads: { m: ops.softmaxBackward(g, w, dy) } };
      },
      [7],
    ));

  it('cross-entropy against one-hot class rows', () =>
    checkGradients(
      { z: { shape: [4, 9], grad: true } },
      (g, v, dy) => {
        const onehot = new Float32Array(36);
        [2, 0, 8, 2].forEach((c, k) => (onehot[k * 9 + c] = 1));
        const ce = ops.crossEntropy(g, v.z, g.constFloat(onehot, [4, 9]));
        // L = loss * R (R a scalar here, broadcast): d/dz = dlogits * R
        return { y: ce.loss, grads: { z: g.op('Mul', [ce.dlogits, dy]) } };
      },
      [],
    ));
});
