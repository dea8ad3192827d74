/**
 * The training-step graph: forward of the aggregation network on a pair (batch 2), the
 * paper's symmetric CLIP-style loss (train_hyperfeatures.compute_clip_loss: logits =
 * (1/0.07) cosine(source keypoint descriptor, every target pixel), cross-entropy against the
 * target pixel, and the same from target to source, averaged), every parameter gradient by
 * hand-written backward ops, and one AdamW update. Parameters and optimizer state go in,
 * updated ones come out.
 */
import { GraphBuilder } from '../../model/onnx/graph.ts';
import { LOGIT_SCALE, layerKey, parameterShapes, type AggregationConfig } from '../config.ts';
import * as ops from './ops.ts';
import { adamwScalarInputs, adamwUpdate } from './adamw.ts';
import { layerBatch, layerWeights, splitTimesteps } from '../graph.ts';

const GN_EPS = 1e-5;

interface BlockSaved {
  x: string;
  r1: string;
  r2: string;
  y: string;
  gn: Record<'conv1' | 'conv2' | 'conv3' | 'shortcut', ops.GroupNormSaved | undefined>;
}

export function buildTrainStepGraph(c: AggregationConfig): GraphBuilder {
  const g = new GraphBuilder();
  const shapes = parameterShapes(c);
  const P = new Map([...shapes].map(([n, s]) => [n, g.input(n, s)]));
  const L = c.featureDims.length;
  const S = c.saveTimesteps.length;
  const total = S * c.featureDims.reduce((a, b) => a + b, 0);
  const features = g.input('features', [2, total, 'height', 'width']);
  const sourceIdx = g.input('source_idx', ['points'], 'int64');
  const targetIdx = g.input('target_idx', ['points'], 'int64');
  const p = (l: number, part: string) => P.get(layerKey(l, part))!;
  const G = c.numNormGroups;

  // ---- forward, one bottleneck run per layer on all timesteps at once ([S*2, C, R, R])
  const w = g.op('Softmax', [P.get('mixing_weights')!], { axis: 0 });
  const saved: BlockSaved[] = [];
  let D: string | undefined;
  for (let l = 0; l < L; l++) {
    const dim = c.featureDims[l];
    const x = layerBatch(g, features, c, l);
    const cbn = (name: 'conv1' | 'conv2' | 'conv3' | 'shortcut', v: string, kk: number) =>
      ops.groupNormForward(
        g,
        ops.convForward(g, v, p(l, `${name}.weight`), kk),
        p(l, `${name}.norm.weight`),
        p(l, `${name}.norm.bias`),
        G,
        GN_EPS,
      );
    const gn1 = cbn('conv1', x, 1);
    const r1 = g.op('Relu', [gn1.out]);
    const gn2 = cbn('conv2', r1, 3);
    const r2 = g.op('Relu', [gn2.out]);
    const gn3 = cbn('conv3', r2, 1);
    const gns = dim !== c.projectionDim ? cbn('shortcut', x, 1) : undefined;
    const y = g.op('Relu', [g.op('Add', [gn3.out, gns ? gns.out : x])]);
    saved.push({ x, r1, r2, y, gn: { conv1: gn1, conv2: gn2, conv3: gn3, shortcut: gns } });
    const weighted = g.op(
      'ReduceSum',
      [g.op('Mul', [splitTimesteps(g, y, S), layerWeights(g, w, c, l)]), g.constInt64([0])],
      { keepdims: 0 },
    );
    D = D ? g.op('Add', [D, weighted]) : weighted;
  }
  g.output('descriptors', D!, [2, c.projectionDim, 'height', 'width']);

  // ---- loss on the pair's descriptors: rows are pixels, unit-normalised
  const pixels = (b: number) =>
    g.op(
      'Transpose',
      [
        g.op('Reshape', [
          g.op('Gather', [D!, g.constInt64([b])], { axis: 0 }),
          g.constInt64([c.projectionDim, -1]),
        ]),
      ],
      { perm: [1, 0] },
    );
  const n1 = ops.normalizeForward(g, pixels(0));
  const n2 = ops.normalizeForward(g, pixels(1));
  const scale = g.constFloat([LOGIT_SCALE], []);
  const classes = g.op('Gather', [g.op('Shape', [n1.u]), g.constInt64([0])], { axis: 0 });
  const u1s = g.op('Gather', [n1.u, sourceIdx], { axis: 0 }); // [K, P]
  const u2t = g.op('Gather', [n2.u, targetIdx], { axis: 0 });
  const logitsS = g.op('Mul', [g.op('MatMul', [u1s, g.op('Transpose', [n2.u], { perm: [1, 0] })]), scale]); // [K, N]
  const logitsT = g.op('Mul', [g.op('MatMul', [u2t, g.op('Transpose', [n1.u], { perm: [1, 0] })]), scale]);
  const ceS = ops.crossEntropy(g, logitsS, targetIdx, classes);
  const ceT = ops.crossEntropy(g, logitsT, sourceIdx, classes);
  const half = g.constFloat([0.5], []);
  g.output('loss', g.op('Mul', [g.op('Add', [ceS.loss, ceT.loss]), half]), []);

  // ---- backward through the loss: d/dU1 and d/dU2 (scatter-add as one-hot matmuls)
  const dS = g.op('Mul', [ceS.dlogits, g.op('Mul', [half, scale])]);
  const dT = g.op('Mul', [ceT.dlogits, g.op('Mul', [half, scale])]);
  const scatterT = (idx: string) =>
    g.op(
      'Transpose',
      [g.op('OneHot', [idx, classes, g.constFloat([0, 1], [2], 'onehot_values')], { axis: -1 })],
      { perm: [1, 0] },
    ); // [N, K]
  const tr = (v: string) => g.op('Transpose', [v], { perm: [1, 0] });
  const du1 = g.op('Add', [
    g.op('MatMul', [scatterT(sourceIdx), g.op('MatMul', [dS, n2.u])]),
    g.op('MatMul', [tr(dT), u2t]),
  ]);
  const du2 = g.op('Add', [
    g.op('MatMul', [tr(dS), u1s]),
    g.op('MatMul', [scatterT(targetIdx), g.op('MatMul', [dT, n1.u])]),
  ]);
  const shape1 = g.op(
    'Concat',
    [g.constInt64([1]), g.op('Slice', [g.op('Shape', [D!]), g.constInt64([1]), g.constInt64([4])])],
    { axis: 0 },
  );
  const back = (df: string) => g.op('Reshape', [tr(df), shape1]);
  const dD = g.op(
    'Concat',
    [back(ops.normalizeBackward(g, n1.u, n1.norm, du1)), back(ops.normalizeBackward(g, n2.u, n2.norm, du2))],
    { axis: 0 },
  );

  // ---- backward through mixing and the bottlenecks (batched timesteps sum into shared parameters)
  const grads = new Map<string, string[]>();
  const add = (name: string, v: string) => grads.set(name, [...(grads.get(name) ?? []), v]);
  const gl: string[] = [];
  saved.forEach((s, l) => {
    const y5 = splitTimesteps(g, s.y, S); // [S, 2, P, R, R]
    gl.push(g.op('ReduceSum', [g.op('Mul', [y5, dD]), g.constInt64([1, 2, 3, 4])], { keepdims: 0 })); // [S]
    const dy = g.op('Reshape', [g.op('Mul', [layerWeights(g, w, c, l), dD]), g.op('Shape', [s.y])]);
    const ds = ops.reluBackward(g, s.y, dy);
    const convBn = (
      name: 'conv1' | 'conv2' | 'conv3' | 'shortcut',
      input: string,
      dout: string,
      kk: number,
      needDx: boolean,
    ) => {
      const b = ops.groupNormBackward(g, s.gn[name]!, p(l, `${name}.norm.weight`), dout, G);
      add(layerKey(l, `${name}.norm.weight`), b.dgamma);
      add(layerKey(l, `${name}.norm.bias`), b.dbeta);
      const cb = ops.convBackward(g, input, p(l, `${name}.weight`), b.dx, kk, needDx);
      add(layerKey(l, `${name}.weight`), cb.dw);
      return cb.dx;
    };
    const dr2 = convBn('conv3', s.r2, ds, 1, true)!;
    const dr1 = convBn('conv2', s.r1, ops.reluBackward(g, s.r2, dr2), 3, true)!;
    convBn('conv1', s.x, ops.reluBackward(g, s.r1, dr1), 1, false);
    if (s.gn.shortcut) convBn('shortcut', s.x, ds, 1, false);
  });
  // gradient w.r.t. the softmaxed weights, back in timestep-major [S * L] order
  const dwMix = g.op('Reshape', [
    g.op(
      'Transpose',
      [
        g.op(
          'Concat',
          gl.map((v) => g.op('Unsqueeze', [v, g.constInt64([0])])),
          { axis: 0 },
        ),
      ],
      { perm: [1, 0] },
    ),
    g.constInt64([-1]),
  ]);
  add('mixing_weights', ops.softmaxBackward(g, w, dwMix));

  // ---- AdamW on every parameter
  const scalars = adamwScalarInputs(g);
  for (const [name, shape] of shapes) {
    const parts = grads.get(name)!;
    const grad = parts.length === 1 ? g.op('Identity', parts) : g.op('Sum', parts);
    g.output(`grad.${name}`, grad, shape);
    const r = adamwUpdate(
      g,
      scalars,
      P.get(name)!,
      grad,
      g.input(`m.${name}`, shape),
      g.input(`v.${name}`, shape),
    );
    g.output(`new.${name}`, r.param, shape);
    g.output(`new_m.${name}`, r.m, shape);
    g.output(`new_v.${name}`, r.v, shape);
  }
  return g;
}
