/**
 * Forward ops that keep what their backward needs, and the backward ops, for the op set of
 * the aggregation network and its loss. Each pair is a small ONNX subgraph; tests check every
 * backward against finite differences.
 */
import type { GraphBuilder } from '../../model/onnx/graph.ts';

const i64 = (g: GraphBuilder, v: number[]) => g.constInt64(v);
const f32 = (g: GraphBuilder, v: number) => g.constFloat([v], []);

/** Conv (no bias, stride 1, "same" padding) -> y. */
export function convForward(g: GraphBuilder, x: string, w: string, k: number): string {
  const p = (k - 1) >> 1;
  return g.op('Conv', [x, w], { kernel_shape: [k, k], pads: [p, p, p, p] });
}

/**
 * `x` [A, C, H, W] with C padded by zero channels to a multiple of 4 (C known only at run time).
 * onnxruntime 1.30's WebGPU Conv reads the input channels three at a time when their count is a
 * multiple of 3 but not of 4, and then returns wrong values for any count above 3 with a kernel
 * over 1x1 (6 channels, 3x3: 100% off; test/webgpu/ops.test.ts). Zero channels change no sum.
 */
function padChannelsTo4(g: GraphBuilder, x: string): string {
  const four = i64(g, [4]);
  const c = g.op('Slice', [g.op('Shape', [x]), i64(g, [1]), i64(g, [2])]);
  const extra = g.op('Mod', [g.op('Sub', [four, g.op('Mod', [c, four])]), four]);
  return g.op('Pad', [x, g.op('Concat', [i64(g, [0, 0, 0, 0, 0]), extra, i64(g, [0, 0])], { axis: 0 })]);
}

/**
 * Gradients of y = conv(x, w): dx by ConvTranspose with the same weight, dw by a conv of x with
 * dy over the batch (whose channels are the batch: padded to a multiple of 4 where `padChannels`,
 * for WebGPU, see padChannelsTo4).
 */
export function convBackward(
  g: GraphBuilder,
  x: string,
  w: string,
  dy: string,
  k: number,
  needDx: boolean,
  padChannels = false,
): { dx?: string; dw: string } {
  const p = (k - 1) >> 1;
  const dx = needDx
    ? g.op('ConvTranspose', [dy, w], { kernel_shape: [k, k], pads: [p, p, p, p] })
    : undefined;
  let dw: string;
  if (k === 1) {
    // dw[o, i] = sum_{b, n} dy[b, o, n] x[b, i, n]
    const dyf = g.op('Reshape', [dy, i64(g, [0, 0, -1])]);
    const xt = g.op('Transpose', [g.op('Reshape', [x, i64(g, [0, 0, -1])])], { perm: [0, 2, 1] });
    const per = g.op('ReduceSum', [g.op('MatMul', [dyf, xt]), i64(g, [0])], { keepdims: 0 });
    dw = g.op('Unsqueeze', [per, i64(g, [2, 3])]);
  } else {
    let xt = g.op('Transpose', [x], { perm: [1, 0, 2, 3] }); // [Ci, B, H, W]
    let dyt = g.op('Transpose', [dy], { perm: [1, 0, 2, 3] }); // [Co, B, H, W] as weights
    if (padChannels) [xt, dyt] = [padChannelsTo4(g, xt), padChannelsTo4(g, dyt)];
    // out[i, o, u, v] = sum_{b,h,w} x[b, i, h+u-p, w+v-p] dy[b, o, h, w]; kernel size comes from dy's shape
    const c = g.op('Conv', [xt, dyt], { pads: [p, p, p, p] });
    dw = g.op('Transpose', [c], { perm: [1, 0, 2, 3] });
  }
  return { dx, dw };
}

export interface GroupNormSaved {
  xhat: string; // [B, C, H, W]
  rstd: string; // [B, G, 1]
  out: string;
}

/** GroupNorm with the normalised input and 1/std kept for the backward pass. */
export function groupNormForward(
  g: GraphBuilder,
  x: string,
  gamma: string,
  beta: string,
  groups: number,
  eps: number,
): GroupNormSaved {
  const shape = g.op('Shape', [x]);
  const xg = g.op('Reshape', [x, i64(g, [0, groups, -1])]);
  const mean = g.op('ReduceMean', [xg], { axes: [2], keepdims: 1 });
  const d = g.op('Sub', [xg, mean]);
  const variance = g.op('ReduceMean', [g.op('Mul', [d, d])], { axes: [2], keepdims: 1 });
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, f32(g, eps)])])]);
  const xhat = g.op('Reshape', [g.op('Mul', [d, rstd]), shape]);
  const c3 = (v: string) => g.op('Unsqueeze', [v, i64(g, [1, 2])]);
  return { xhat, rstd, out: g.op('Add', [g.op('Mul', [xhat, c3(gamma)]), c3(beta)]) };
}

/** dx, dgamma, dbeta of GroupNorm: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) per group. */
export function groupNormBackward(
  g: GraphBuilder,
  s: GroupNormSaved,
  gamma: string,
  dy: string,
  groups: number,
): { dx: string; dgamma: string; dbeta: string } {
  const axes = i64(g, [0, 2, 3]);
  const dgamma = g.op('ReduceSum', [g.op('Mul', [dy, s.xhat]), axes], { keepdims: 0 });
  const dbeta = g.op('ReduceSum', [dy, axes], { keepdims: 0 });
  const dxhat = g.op('Mul', [dy, g.op('Unsqueeze', [gamma, i64(g, [1, 2])])]);
  const grp = (v: string) => g.op('Reshape', [v, i64(g, [0, groups, -1])]);
  const dxh = grp(dxhat);
  const xh = grp(s.xhat);
  const m1 = g.op('ReduceMean', [dxh], { axes: [2], keepdims: 1 });
  const m2 = g.op('ReduceMean', [g.op('Mul', [dxh, xh])], { axes: [2], keepdims: 1 });
  const dxg = g.op('Mul', [g.op('Sub', [g.op('Sub', [dxh, m1]), g.op('Mul', [xh, m2])]), s.rstd]);
  return { dx: g.op('Reshape', [dxg, g.op('Shape', [dy])]), dgamma, dbeta };
}

/** d relu: pass the gradient where the OUTPUT is positive. */
export function reluBackward(g: GraphBuilder, y: string, dy: string): string {
  return g.op('Mul', [dy, g.op('Cast', [g.op('Greater', [y, f32(g, 0)])], { to: 1 })]);
}

/** Rows scaled to unit L2 norm: u = f / |f| on the last axis (returns u and |f|). */
export function normalizeForward(g: GraphBuilder, f: string): { u: string; norm: string } {
  const norm = g.op('Sqrt', [g.op('ReduceSum', [g.op('Mul', [f, f]), i64(g, [-1])], { keepdims: 1 })]);
  return { u: g.op('Div', [f, norm]), norm };
}

/** df = (du - u sum(du u)) / |f|. */
export function normalizeBackward(g: GraphBuilder, u: string, norm: string, du: string): string {
  const proj = g.op('ReduceSum', [g.op('Mul', [du, u]), i64(g, [-1])], { keepdims: 1 });
  return g.op('Div', [g.op('Sub', [du, g.op('Mul', [u, proj])]), norm]);
}

/**
 * Mean cross-entropy of logits [K, N] against one-hot targets [K, N] (float), and its gradient
 * (softmax - onehot) / K. The one-hot rows come from the host and the log-softmax is spelled
 * out (max, exp, sum, log): onnxruntime's WebGPU provider has no OneHot or LogSoftmax kernel,
 * and those nodes would run on the CPU.
 */
export function crossEntropy(
  g: GraphBuilder,
  logits: string,
  onehot: string,
): { loss: string; dlogits: string } {
  const shifted = g.op('Sub', [logits, g.op('ReduceMax', [logits], { axes: [-1], keepdims: 1 })]);
  const logSum = g.op('Log', [g.op('ReduceSum', [g.op('Exp', [shifted]), i64(g, [-1])], { keepdims: 1 })]);
  const logp = g.op('Sub', [shifted, logSum]);
  const k = g.op('ReduceSum', [onehot, i64(g, [0, 1])], { keepdims: 0 }); // each row sums to 1
  const loss = g.op('Div', [
    g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [logp, onehot]), i64(g, [0, 1])], { keepdims: 0 })]),
    k,
  ]);
  const dlogits = g.op('Div', [g.op('Sub', [g.op('Softmax', [logits], { axis: -1 }), onehot]), k]);
  return { loss, dlogits };
}

/** d softmax: dm = w (g - sum(w g)) for w = softmax(m) over a vector. */
export function softmaxBackward(g: GraphBuilder, w: string, dw: string): string {
  const dot = g.op('ReduceSum', [g.op('Mul', [w, dw]), i64(g, [0])], { keepdims: 1 });
  return g.op('Mul', [w, g.op('Sub', [dw, dot])]);
}
