/**
 * The training step, split so memory stays bounded at the paper's size (SD-1.5 maps, 11 x 12,
 * projection 384, 64 x 64, batch 2): one layer at a time, with the layer's activations
 * recomputed in the backward pass instead of kept for all 12 layers.
 *
 *   forward graph (per layer width):   x_l, params_l, w_l -> sum_s w_{s,l} y_{s,l}
 *   loss graph (per pair):             D -> loss (train_hyperfeatures.compute_clip_loss), dL/dD
 *   backward graph (per layer width):  x_l, params_l, w_l, dL/dD -> dL/dparams_l, dL/dw_{.,l}
 *   update graph:                      every parameter, gradient and moment -> AdamW step
 *
 * The loss is the paper's symmetric CLIP-style loss: logits = (1/0.07) cosine(source keypoint
 * descriptor, every target pixel), cross-entropy against the target pixel, and the same from
 * target to source, averaged. Gradients are hand-written backward ops (./ops.ts, each checked
 * against finite differences).
 */
import { GraphBuilder } from '../../model/onnx/graph.ts';
import { extrasOf, LOGIT_SCALE, parameterShapes, type AggregationConfig } from '../config.ts';
import * as ops from './ops.ts';
import { adamwScalarInputs, adamwUpdate } from './adamw.ts';
import { splitTimesteps } from '../graph.ts';

const GN_EPS = 1e-5;
type Conv = 'conv1' | 'conv2' | 'conv3' | 'shortcut';

/** Parameter names of one bottleneck layer without the `bottleneck_layers.<l>.0.` prefix. */
export function layerParamShapes(c: AggregationConfig, dim: number): Map<string, number[]> {
  const p = c.projectionDim;
  const b = p / 4;
  const out = new Map<string, number[]>();
  const conv = (name: Conv, shape: number[]) => {
    out.set(`${name}.weight`, shape);
    out.set(`${name}.norm.weight`, [shape[0]]);
    out.set(`${name}.norm.bias`, [shape[0]]);
  };
  if (dim !== p) conv('shortcut', [p, dim, 1, 1]);
  conv('conv1', [b, dim, 1, 1]);
  conv('conv2', [b, b, 3, 3]);
  conv('conv3', [p, b, 1, 1]);
  return out;
}

/** The bottleneck on x [S*N, dim, R, R], keeping what the backward pass needs. */
function bottleneckForward(
  g: GraphBuilder,
  c: AggregationConfig,
  dim: number,
  x: string,
  p: (n: string) => string,
) {
  const cbn = (name: Conv, v: string, k: number) =>
    ops.groupNormForward(
      g,
      ops.convForward(g, v, p(`${name}.weight`), k),
      p(`${name}.norm.weight`),
      p(`${name}.norm.bias`),
      c.numNormGroups,
      GN_EPS,
    );
  const gn1 = cbn('conv1', x, 1);
  const r1 = g.op('Relu', [gn1.out]);
  const gn2 = cbn('conv2', r1, 3);
  const r2 = g.op('Relu', [gn2.out]);
  const gn3 = cbn('conv3', r2, 1);
  const gns = dim !== c.projectionDim ? cbn('shortcut', x, 1) : undefined;
  const y = g.op('Relu', [g.op('Add', [gn3.out, gns ? gns.out : x])]);
  return { x, r1, r2, y, gn: { conv1: gn1, conv2: gn2, conv3: gn3, shortcut: gns } };
}

function layerInputs(g: GraphBuilder, c: AggregationConfig, dim: number) {
  const S = c.saveTimesteps.length;
  const x = g.input('x', ['sn', dim, 'height', 'width']);
  const params = new Map([...layerParamShapes(c, dim)].map(([n, s]) => [n, g.input(n, s)]));
  const w = g.input('w', [S]); // this layer's softmaxed mixing weights, one per timestep
  const w5 = g.op('Reshape', [w, g.constInt64([S, 1, 1, 1, 1])]);
  return { x, p: (n: string) => params.get(n)!, w5, S };
}

/** x_l [S*N, dim, R, R] (timestep-major), params, w_l [S] -> `contribution` [N, P, R, R]. */
export function buildLayerForwardGraph(c: AggregationConfig, dim: number): GraphBuilder {
  const g = new GraphBuilder();
  const { x, p, w5, S } = layerInputs(g, c, dim);
  const f = bottleneckForward(g, c, dim, x, p);
  const contribution = g.op('ReduceSum', [g.op('Mul', [splitTimesteps(g, f.y, S), w5]), g.constInt64([0])], {
    keepdims: 0,
  });
  g.output('contribution', contribution, ['n', c.projectionDim, 'height', 'width']);
  return g;
}

/**
 * x_l, params, w_l, dD [N, P, R, R] -> `grad.<param>` for the layer and `gw` [S] (dL/dw_{s,l}),
 * the forward recomputed inside.
 */
export function buildLayerBackwardGraph(
  c: AggregationConfig,
  dim: number,
  options: { padChannels?: boolean } = {},
): GraphBuilder {
  const g = new GraphBuilder();
  const { x, p, w5, S } = layerInputs(g, c, dim);
  const dD = g.input('dD', ['n', c.projectionDim, 'height', 'width']);
  const s = bottleneckForward(g, c, dim, x, p);
  const y5 = splitTimesteps(g, s.y, S); // [S, N, P, R, R]
  g.output('gw', g.op('ReduceSum', [g.op('Mul', [y5, dD]), g.constInt64([1, 2, 3, 4])], { keepdims: 0 }), [
    S,
  ]);
  const dy = g.op('Reshape', [g.op('Mul', [w5, dD]), g.op('Shape', [s.y])]);
  const ds = ops.reluBackward(g, s.y, dy);
  const grads = new Map<string, string[]>();
  const add = (name: string, v: string) => grads.set(name, [...(grads.get(name) ?? []), v]);
  const convBn = (name: Conv, input: string, dout: string, k: number, needDx: boolean) => {
    const b = ops.groupNormBackward(g, s.gn[name]!, p(`${name}.norm.weight`), dout, c.numNormGroups);
    add(`${name}.norm.weight`, b.dgamma);
    add(`${name}.norm.bias`, b.dbeta);
    const cb = ops.convBackward(g, input, p(`${name}.weight`), b.dx, k, needDx, options.padChannels);
    add(`${name}.weight`, cb.dw);
    return cb.dx;
  };
  const dr2 = convBn('conv3', s.r2, ds, 1, true)!;
  const dr1 = convBn('conv2', s.r1, ops.reluBackward(g, s.r2, dr2), 3, true)!;
  convBn('conv1', s.x, ops.reluBackward(g, s.r1, dr1), 1, false);
  if (s.gn.shortcut) convBn('shortcut', s.x, ds, 1, false);
  for (const [name, shape] of layerParamShapes(c, dim)) {
    const parts = grads.get(name)!;
    g.output(`grad.${name}`, parts.length === 1 ? g.op('Identity', parts) : g.op('Sum', parts), shape);
  }
  return g;
}

/** One pair's descriptors D [2, P, R, R] + keypoint indices -> `loss` and `dD` [2, P, R, R]. */
export function buildLossGraph(c: AggregationConfig): GraphBuilder {
  const g = new GraphBuilder();
  const D = g.input('D', [2, c.projectionDim, 'height', 'width']);
  const sourceIdx = g.input('source_idx', ['points'], 'int64');
  const targetIdx = g.input('target_idx', ['points'], 'int64');
  // the same keypoints as one-hot rows over the R*R pixels (see ops.crossEntropy)
  const sourceOnehot = g.input('source_onehot', ['points', 'pixels']);
  const targetOnehot = g.input('target_onehot', ['points', 'pixels']);
  const tr = (v: string) => g.op('Transpose', [v], { perm: [1, 0] });
  // rows are pixels, unit-normalised
  const pixels = (b: number) =>
    tr(
      g.op('Reshape', [
        g.op('Gather', [D, g.constInt64([b])], { axis: 0 }),
        g.constInt64([c.projectionDim, -1]),
      ]),
    );
  const n1 = ops.normalizeForward(g, pixels(0));
  const n2 = ops.normalizeForward(g, pixels(1));
  const scale = g.constFloat([LOGIT_SCALE], []);
  const u1s = g.op('Gather', [n1.u, sourceIdx], { axis: 0 }); // [K, P]
  const u2t = g.op('Gather', [n2.u, targetIdx], { axis: 0 });
  const logitsS = g.op('Mul', [g.op('MatMul', [u1s, tr(n2.u)]), scale]); // [K, N]
  const logitsT = g.op('Mul', [g.op('MatMul', [u2t, tr(n1.u)]), scale]);
  const ceS = ops.crossEntropy(g, logitsS, targetOnehot);
  const ceT = ops.crossEntropy(g, logitsT, sourceOnehot);
  const half = g.constFloat([0.5], []);
  g.output('loss', g.op('Mul', [g.op('Add', [ceS.loss, ceT.loss]), half]), []);
  // d/dU1 and d/dU2 (scatter-add as one-hot matmuls)
  const dS = g.op('Mul', [ceS.dlogits, g.op('Mul', [half, scale])]);
  const dT = g.op('Mul', [ceT.dlogits, g.op('Mul', [half, scale])]);
  const du1 = g.op('Add', [
    g.op('MatMul', [tr(sourceOnehot), g.op('MatMul', [dS, n2.u])]),
    g.op('MatMul', [tr(dT), u2t]),
  ]);
  const du2 = g.op('Add', [
    g.op('MatMul', [tr(dS), u1s]),
    g.op('MatMul', [tr(targetOnehot), g.op('MatMul', [dT, n1.u])]),
  ]);
  const shape1 = g.op(
    'Concat',
    [g.constInt64([1]), g.op('Slice', [g.op('Shape', [D]), g.constInt64([1]), g.constInt64([4])])],
    { axis: 0 },
  );
  const back = (df: string) => g.op('Reshape', [tr(df), shape1]);
  g.output(
    'dD',
    g.op(
      'Concat',
      [
        back(ops.normalizeBackward(g, n1.u, n1.norm, du1)),
        back(ops.normalizeBackward(g, n2.u, n2.norm, du2)),
      ],
      {
        axis: 0,
      },
    ),
    [2, c.projectionDim, 'height', 'width'],
  );
  return g;
}

/**
 * Every parameter with its gradient (the mixing logits' through the softmax, from `gw_mix`
 * [S*L + E], timestep-major, then the extra maps') and AdamW moments -> `grad.*`, `new.*`,
 * `new_m.*`, `new_v.*`.
 */
export function buildUpdateGraph(c: AggregationConfig): GraphBuilder {
  const g = new GraphBuilder();
  const shapes = parameterShapes(c);
  const scalars = adamwScalarInputs(g);
  const n = shapes.get('mixing_weights')![0];
  const E = extrasOf(c).length;
  const mixing = g.input('mixing_weights', [n]);
  const extra = E ? g.input('extra_mixing_weights', [E]) : undefined;
  // one softmax over the diffusion maps' and the extra maps' logits (graph.ts jointMixingWeights)
  const gwMix = g.input('gw_mix', [n + E]);
  const logits = extra ? g.op('Concat', [mixing, extra], { axis: 0 }) : mixing;
  const gLogits = ops.softmaxBackward(g, g.op('Softmax', [logits], { axis: 0 }), gwMix);
  const part = (from: number, to: number) =>
    extra ? g.op('Slice', [gLogits, g.constInt64([from]), g.constInt64([to]), g.constInt64([0])]) : gLogits;
  const mixGrads = new Map<string, string>([['mixing_weights', part(0, n)]]);
  if (extra) mixGrads.set('extra_mixing_weights', part(n, n + E));
  for (const [name, shape] of shapes) {
    const param =
      name === 'mixing_weights' ? mixing : name === 'extra_mixing_weights' ? extra! : g.input(name, shape);
    const grad = mixGrads.get(name) ?? g.input(`grad.${name}`, shape);
    if (mixGrads.has(name)) g.output(`grad.${name}`, grad, shape);
    const r = adamwUpdate(g, scalars, param, grad, g.input(`m.${name}`, shape), g.input(`v.${name}`, shape));
    g.output(`new.${name}`, r.param, shape);
    g.output(`new_m.${name}`, r.m, shape);
    g.output(`new_v.${name}`, r.v, shape);
  }
  return g;
}
