/**
 * AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments),
 * as ONNX nodes. The step-dependent scalars are computed here in float64 and fed in.
 */
import { GraphBuilder } from '../../model/onnx/graph.ts';
import { Tensor } from '../../core/tensor.ts';

export interface AdamWScalarInputs {
  decay: string;
  stepSize: string;
  bc2Sqrt: string;
  beta1: string;
  beta2: string;
  eps: string;
}

export const ADAMW_SCALARS = [
  'adamw_decay',
  'adamw_step_size',
  'adamw_bc2_sqrt',
  'adamw_beta1',
  'adamw_beta2',
  'adamw_eps',
] as const;

export function adamwScalarInputs(g: GraphBuilder): AdamWScalarInputs {
  const [decay, stepSize, bc2Sqrt, beta1, beta2, eps] = ADAMW_SCALARS.map((n) => g.input(n, []));
  return { decay, stepSize, bc2Sqrt, beta1, beta2, eps };
}

/** Feeds for step t (1-based). */
export function adamwScalarFeeds(
  o: { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number },
  t: number,
): Record<string, Tensor> {
  const s = (v: number) => Tensor.from([v], []);
  return {
    adamw_decay: s(1 - o.lr * o.weightDecay),
    adamw_step_size: s(o.lr / (1 - o.beta1 ** t)),
    adamw_bc2_sqrt: s(Math.sqrt(1 - o.beta2 ** t)),
    adamw_beta1: s(o.beta1),
    adamw_beta2: s(o.beta2),
    adamw_eps: s(o.eps),
  };
}

/** p <- p (1 - lr wd); m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; p <- p - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). */
export function adamwUpdate(
  g: GraphBuilder,
  s: AdamWScalarInputs,
  param: string,
  grad: string,
  m: string,
  v: string,
) {
  const one = g.constFloat([1], []);
  const m2 = g.op('Add', [g.op('Mul', [m, s.beta1]), g.op('Mul', [grad, g.op('Sub', [one, s.beta1])])]);
  const v2 = g.op('Add', [
    g.op('Mul', [v, s.beta2]),
    g.op('Mul', [g.op('Mul', [grad, grad]), g.op('Sub', [one, s.beta2])]),
  ]);
  const denom = g.op('Add', [g.op('Div', [g.op('Sqrt', [v2]), s.bc2Sqrt]), s.eps]);
  const p2 = g.op('Sub', [
    g.op('Mul', [param, s.decay]),
    g.op('Mul', [s.stepSize, g.op('Div', [m2, denom])]),
  ]);
  return { param: p2, m: m2, v: v2 };
}

/** A standalone optimizer graph for one parameter tensor (tests and custom loops). */
export function buildAdamWGraph(shape: number[]): GraphBuilder {
  const g = new GraphBuilder();
  const s = adamwScalarInputs(g);
  const r = adamwUpdate(
    g,
    s,
    g.input('param', shape),
    g.input('grad', shape),
    g.input('m', shape),
    g.input('v', shape),
  );
  g.output('new_param', r.param, shape);
  g.output('new_m', r.m, shape);
  g.output('new_v', r.v, shape);
  return g;
}
