/**
 * The aggregation network's forward pass as an ONNX graph whose parameters are graph
 * INPUTS (named as in the state dict), so the same graph serves inference with loaded
 * weights and training with updated ones. detectron2 BottleneckBlock per layer, GroupNorm(32)
 * eps 1e-5, bottlenecks shared across timesteps, softmax mixing, timestep-major slices.
 */
import { GraphBuilder } from '../model/onnx/graph.ts';
import { conv2d, groupNorm, type Ctx } from '../model/onnx/nn.ts';
import type { ParamOptions, WeightSource } from '../model/weights.ts';
import { extraKey, extrasOf, layerKey, parameterShapes, type AggregationConfig } from './config.ts';

const GN_EPS = 1e-5;

/** Parameters as graph inputs, declared once each and reshaped on demand. */
export class InputParams implements WeightSource {
  private readonly declared = new Map<string, string>();
  constructor(private readonly shapes: Map<string, number[]>) {}
  has(name: string): boolean {
    return this.shapes.has(name);
  }
  param(g: GraphBuilder, name: string, _expected: readonly number[], options: ParamOptions = {}): string {
    const key = `${name}|${options.reshape?.join(',') ?? ''}`;
    const cached = this.declared.get(key);
    if (cached) return cached;
    if (!this.declared.has(`${name}|`)) this.declared.set(`${name}|`, g.input(name, this.shapes.get(name)!));
    const base = this.declared.get(`${name}|`)!;
    const value = options.reshape ? g.op('Reshape', [base, g.constInt64(options.reshape)]) : base;
    this.declared.set(key, value);
    return value;
  }
}

/**
 * One BottleneckBlock: relu(gn3(conv3(relu(gn2(conv2(relu(gn1(conv1 x))))))) + shortcut(x)),
 * layer l's (or, with `key`, another block's parameters: the extra maps').
 */
export function bottleneck(
  ctx: Ctx,
  l: number,
  x: string,
  dim: number,
  c: AggregationConfig,
  key: (part: string) => string = (part) => layerKey(l, part),
): string {
  const { g } = ctx;
  const p = c.projectionDim;
  const b = p / 4;
  const G = c.numNormGroups;
  const cbn = (name: string, v: string, cin: number, cout: number, k: number) =>
    groupNorm(
      ctx,
      key(`${name}.norm`),
      conv2d(ctx, key(name), v, cin, cout, k, { bias: false }),
      cout,
      G,
      GN_EPS,
    );
  let h = g.op('Relu', [cbn('conv1', x, dim, b, 1)]);
  h = g.op('Relu', [cbn('conv2', h, b, b, 3)]);
  h = cbn('conv3', h, b, p, 1);
  const shortcut = dim !== p ? cbn('shortcut', x, dim, p, 1) : x;
  return g.op('Relu', [g.op('Add', [h, shortcut])]);
}

/** Graph: `features` [B, S*sum(C), R, R] + parameters -> `descriptors` [B, P, R, R]. */
/**
 * For layer l, the S timestep slices of `features` stacked on the batch axis, so the shared
 * bottleneck runs once per layer on [S*B, C_l, R, R] (order: timestep-major, then image).
 */
export function layerBatch(g: GraphBuilder, features: string, c: AggregationConfig, l: number): string {
  const sumC = c.featureDims.reduce((a, b) => a + b, 0);
  const offset = c.featureDims.slice(0, l).reduce((a, b) => a + b, 0);
  const dim = c.featureDims[l];
  const slices = c.saveTimesteps.map((_, s) =>
    g.op('Slice', [
      features,
      g.constInt64([s * sumC + offset]),
      g.constInt64([s * sumC + offset + dim]),
      g.constInt64([1]),
    ]),
  );
  return slices.length === 1 ? slices[0] : g.op('Concat', slices, { axis: 0 });
}

/** [S*B, P, R, R] -> [S, B, P, R, R]. */
export function splitTimesteps(g: GraphBuilder, y: string, S: number): string {
  const rest = g.op('Slice', [g.op('Shape', [y]), g.constInt64([1]), g.constInt64([4])]);
  return g.op('Reshape', [y, g.op('Concat', [g.constInt64([S, -1]), rest], { axis: 0 })]);
}

/** The softmaxed mixing weights of layer l across timesteps, shaped [S, 1, 1, 1, 1]. */
export function layerWeights(g: GraphBuilder, weights: string, c: AggregationConfig, l: number): string {
  const L = c.featureDims.length;
  const idx = c.saveTimesteps.map((_, s) => s * L + l);
  return g.op('Reshape', [
    g.op('Gather', [weights, g.constInt64(idx)], { axis: 0 }),
    g.constInt64([idx.length, 1, 1, 1, 1]),
  ]);
}

/** The mixing weights, softmaxed over the diffusion maps' and the extra maps' logits together. */
export function jointMixingWeights(g: GraphBuilder, w: InputParams, c: AggregationConfig): string {
  const n = c.featureDims.length * c.saveTimesteps.length;
  const logits = w.param(g, 'mixing_weights', [n]);
  const E = extrasOf(c).length;
  if (!E) return g.op('Softmax', [logits], { axis: 0 });
  const all = g.op('Concat', [logits, w.param(g, 'extra_mixing_weights', [E])], { axis: 0 });
  return g.op('Softmax', [all], { axis: 0 });
}

/** Channels of the stacked input: S x the diffusion maps', then each extra map's once. */
export function inputChannels(c: AggregationConfig): number {
  const sd = c.saveTimesteps.length * c.featureDims.reduce((a, b) => a + b, 0);
  return sd + extrasOf(c).reduce((a, e) => a + e.dim, 0);
}

/**
 * Graph: `features` [B, S*sum(C) + sum(extra dims), R, R] + parameters -> `descriptors`
 * [B, P, R, R].
 */
export function buildAggregationGraph(c: AggregationConfig, o: { twoPassNorm?: boolean } = {}): GraphBuilder {
  const g = new GraphBuilder();
  // GroupNorm as two reductions on WebGPU (model/numerics.ts)
  const params = new InputParams(parameterShapes(c));
  const ctx: Ctx = { g, w: params, twoPassNorm: o.twoPassNorm };
  const L = c.featureDims.length;
  const S = c.saveTimesteps.length;
  const features = g.input('features', ['batch', inputChannels(c), 'height', 'width']);
  const weights = jointMixingWeights(g, params, c);
  let out: string | undefined;
  for (let l = 0; l < L; l++) {
    const y = g.scope(`layer${l}`, () =>
      bottleneck(ctx, l, layerBatch(g, features, c, l), c.featureDims[l], c),
    );
    const weighted = g.op(
      'ReduceSum',
      [g.op('Mul', [splitTimesteps(g, y, S), layerWeights(g, weights, c, l)]), g.constInt64([0])],
      { keepdims: 0 },
    );
    out = out ? g.op('Add', [out, weighted]) : weighted;
  }
  // the extra maps: one bottleneck and one weight each, after the diffusion maps' channels
  let offset = S * c.featureDims.reduce((a, b) => a + b, 0);
  extrasOf(c).forEach((e, k) => {
    const x = g.op('Slice', [
      features,
      g.constInt64([offset]),
      g.constInt64([offset + e.dim]),
      g.constInt64([1]),
    ]);
    offset += e.dim;
    const y = g.scope(`extra${k}`, () => bottleneck(ctx, k, x, e.dim, c, (part) => extraKey(k, part)));
    const wk = g.op('Gather', [weights, g.constInt64([L * S + k])], { axis: 0 });
    const weighted = g.op('Mul', [y, g.op('Reshape', [wk, g.constInt64([1, 1, 1, 1])])]);
    out = out ? g.op('Add', [out, weighted]) : weighted;
  });
  g.output('descriptors', out!, ['batch', c.projectionDim, 'height', 'width']);
  return g;
}
