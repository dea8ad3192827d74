/**
 * The aggregation network's forward pass as an ONNX graph whose parameters are graph
 * INPUTS (named as in the state dict), so the same graph serves inference with loaded
 * weights and training with updated ones. detectron2 BottleneckBlock per layer, GroupNorm(32)
 * eps 1e-5, bottlenecks shared across timesteps, softmax mixing, timestep-major slices.
 */
import { GraphBuilder } from '../model/onnx/graph.ts';
import { conv2d, groupNorm, type Ctx } from '../model/onnx/nn.ts';
import type { ParamOptions, WeightSource } from '../model/weights.ts';
import { layerKey, parameterShapes, type AggregationConfig } from './config.ts';

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

/** One BottleneckBlock: relu(gn3(conv3(relu(gn2(conv2(relu(gn1(conv1 x))))))) + shortcut(x)). */
export function bottleneck(ctx: Ctx, l: number, x: string, dim: number, c: AggregationConfig): string {
  const { g } = ctx;
  const p = c.projectionDim;
  const b = p / 4;
  const G = c.numNormGroups;
  const cbn = (name: string, v: string, cin: number, cout: number, k: number) =>
    groupNorm(
      ctx,
      layerKey(l, `${name}.norm`),
      conv2d(ctx, layerKey(l, name), v, cin, cout, k, { bias: false }),
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
export function buildAggregationGraph(c: AggregationConfig): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: new InputParams(parameterShapes(c)) };
  const L = c.featureDims.length;
  const total = c.saveTimesteps.length * c.featureDims.reduce((a, b) => a + b, 0);
  const features = g.input('features', ['batch', total, 'height', 'width']);
  const weights = g.op('Softmax', [ctx.w.param(g, 'mixing_weights', [L * c.saveTimesteps.length])], {
    axis: 0,
  });
  let out: string | undefined;
  let start = 0;
  for (let k = 0; k < L * c.saveTimesteps.length; k++) {
    const l = k % L;
    const dim = c.featureDims[l];
    const x = g.op('Slice', [
      features,
      g.constInt64([start]),
      g.constInt64([start + dim]),
      g.constInt64([1]),
    ]);
    start += dim;
    const y = g.scope(`k${k}`, () => bottleneck(ctx, l, x, dim, c));
    const weighted = g.op('Mul', [y, g.op('Gather', [weights, g.constInt64([k])], { axis: 0 })]);
    out = out ? g.op('Add', [out, weighted]) : weighted;
  }
  g.output('descriptors', out!, ['batch', c.projectionDim, 'height', 'width']);
  return g;
}
