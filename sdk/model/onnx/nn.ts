/**
 * Neural-network layers as ONNX subgraphs, named after the PyTorch modules whose weights
 * they load (`prefix.weight`, `prefix.bias`). Values are graph value names; channel counts
 * are passed in so every weight's shape is checked against the config.
 */
import type { GraphBuilder } from './graph.ts';
import type { WeightSource } from '../weights.ts';

export interface Ctx {
  g: GraphBuilder;
  w: WeightSource;
  /** Emit attention as onnxruntime's fused MultiHeadAttention (faster, less memory, not bit-faithful). */
  fusedAttention?: boolean;
  /** Linear layers as DynamicQuantizeMatMul with int8 weights (faster on CPUs, not bit-faithful). */
  linearInt8?: boolean;
  /** GroupNorm as two reductions (mean, then the centred variance): see model/numerics.ts. */
  twoPassNorm?: boolean;
  /** Attention scores in float32 in a half-precision graph (diffusers' upcast_attention). */
  upcastAttention?: boolean;
}

/** 2D convolution, NCHW. `pads` as ONNX [top, left, bottom, right]. */
export function conv2d(
  { g, w }: Ctx,
  prefix: string,
  x: string,
  cin: number,
  cout: number,
  k: number,
  opts: { stride?: number; pads?: number[]; bias?: boolean } = {},
): string {
  const p = (k - 1) >> 1;
  const inputs = [x, w.param(g, `${prefix}.weight`, [cout, cin, k, k])];
  if (opts.bias !== false) inputs.push(w.param(g, `${prefix}.bias`, [cout]));
  const s = opts.stride ?? 1;
  return g.op('Conv', inputs, { kernel_shape: [k, k], strides: [s, s], pads: opts.pads ?? [p, p, p, p] });
}

/** PyTorch Linear on the last axis: x @ W^T + b. */
export function linear(
  { g, w, linearInt8 }: Ctx,
  prefix: string,
  x: string,
  cin: number,
  cout: number,
  bias = true,
): string {
  if (linearInt8) {
    const name = `${prefix}.weight`;
    const inputs = [
      x,
      w.param(g, name, [cout, cin], { int8: 'weight' }),
      w.param(g, name, [cout, cin], { int8: 'scale' }),
    ];
    if (bias) inputs.push('', w.param(g, `${prefix}.bias`, [cout]));
    return g.op('DynamicQuantizeMatMul', inputs, {}, 'com.microsoft');
  }
  const y = g.op('MatMul', [x, w.param(g, `${prefix}.weight`, [cout, cin], { transpose: true })]);
  return bias ? g.op('Add', [y, w.param(g, `${prefix}.bias`, [cout])]) : y;
}

/**
 * GroupNorm on NCHW: normalise each group over (C/G, H, W) on a [B, G, -1] view (with
 * InstanceNormalization, or two reductions where `twoPassNorm`), then the per-channel affine.
 */
export function groupNorm(
  { g, w, twoPassNorm }: Ctx,
  prefix: string,
  x: string,
  channels: number,
  groups: number,
  eps: number,
): string {
  const grouped = g.op('Reshape', [x, g.constInt64([0, groups, -1])]);
  const normed = twoPassNorm ? twoPassNormalize(g, grouped, eps) : instanceNormalize(g, grouped, groups, eps);
  const back = g.op('Reshape', [normed, g.op('Shape', [x])]);
  const scale = w.param(g, `${prefix}.weight`, [channels], { reshape: [channels, 1, 1] });
  const shift = w.param(g, `${prefix}.bias`, [channels], { reshape: [channels, 1, 1] });
  return g.op('Add', [g.op('Mul', [back, scale]), shift]);
}

function instanceNormalize(g: GraphBuilder, grouped: string, groups: number, eps: number): string {
  const ones = g.constFloat(new Float32Array(groups).fill(1), [groups], 'gn_one');
  const zeros = g.constFloat(new Float32Array(groups), [groups], 'gn_zero');
  return g.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: { float: eps } });
}

/** (x - mean) / sqrt(mean((x - mean)^2) + eps) over `axis` (default the last of [B, G, n]). */
function twoPassNormalize(g: GraphBuilder, x: string, eps: number, axis = 2): string {
  // statistics in float32 in a half-precision graph (a sum of squares overflows half)
  return g.float32(() => {
    const centred = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [axis] })]);
    const variance = g.op('ReduceMean', [g.op('Mul', [centred, centred])], { axes: [axis] });
    return g.op('Div', [centred, g.op('Sqrt', [g.op('Add', [variance, g.constFloat([eps], [])])])]);
  });
}

/** LayerNorm over the last axis (as two reductions where `twoPassNorm`: model/numerics.ts). */
export function layerNorm(
  { g, w, twoPassNorm }: Ctx,
  prefix: string,
  x: string,
  dim: number,
  eps: number,
): string {
  const scale = w.param(g, `${prefix}.weight`, [dim]);
  const shift = w.param(g, `${prefix}.bias`, [dim]);
  if (twoPassNorm) return g.op('Add', [g.op('Mul', [twoPassNormalize(g, x, eps, -1), scale]), shift]);
  return g.op('LayerNormalization', [x, scale, shift], { axis: -1, epsilon: { float: eps } });
}

export function silu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])]);
}

/** Exact (erf) GELU, as torch.nn.functional.gelu; onnxruntime fuses the pattern. */
export function gelu(g: GraphBuilder, x: string): string {
  const erf = g.op('Erf', [g.op('Div', [x, g.constFloat([Math.SQRT2], [])])]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat([0.5], [])]), g.op('Add', [erf, g.constFloat([1], [])])]);
}

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export function quickGelu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.constFloat([1.702], [])])])]);
}

/** [B, N, H*D] -> [B, H, N, D] (or [B, H, D, N] when `transposed`, for keys). */
function splitHeads(g: GraphBuilder, x: string, heads: number, transposed = false): string {
  const r = g.op('Reshape', [x, g.constInt64([0, 0, heads, -1])]);
  return g.op('Transpose', [r], { perm: transposed ? [0, 2, 3, 1] : [0, 2, 1, 3] });
}

/**
 * Scaled dot-product attention on projected q [B, N, H*D], k, v [B, M, H*D]; optional
 * additive mask broadcastable to [B, H, N, M]. Returns [B, N, H*D]. `headGroups` > 1 computes
 * the heads in that many groups one after another, so only one group's [B, H/G, N, M] scores
 * and probabilities are alive at a time (each head's arithmetic is unchanged). The mask and
 * softmax stay float32 in a half-precision graph; `upcast` keeps the scores' matmul there too
 * (diffusers' upcast_attention, which SD 2.x sets because half scores overflow).
 */
export function attention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  heads: number,
  headDim: number,
  mask?: string,
  fused = false,
  headGroups = 1,
  upcast = false,
): string {
  // onnxruntime's contrib kernel: no [B, H, N, M] score tensor is materialised
  if (fused && !mask)
    return g.op(
      'MultiHeadAttention',
      [q, k, v],
      { num_heads: heads, scale: { float: 1 / Math.sqrt(headDim) } },
      'com.microsoft',
    );
  if (headGroups > 1 && heads % headGroups === 0) {
    // split the channels (heads are contiguous in H*D), so each group keeps the plain graph
    // that onnxruntime fuses (scale and key transpose into one FusedMatMul)
    const sizes = g.constInt64(new Array(headGroups).fill((heads / headGroups) * headDim));
    const [qs, ks, vs] = [q, k, v].map((x) => g.opN('Split', [x, sizes], headGroups, { axis: -1 }));
    const outs = qs.map((qg, i) =>
      attention(g, qg, ks[i], vs[i], heads / headGroups, headDim, mask, false, 1, upcast),
    );
    return g.op('Concat', outs, { axis: -1 });
  }
  const qh = g.op('Mul', [splitHeads(g, q, heads), g.constFloat([1 / Math.sqrt(headDim)], [])]);
  const kt = splitHeads(g, k, heads, true);
  const matmul = () => g.op('MatMul', [qh, kt]); // [B, H, N, M]
  const scores = upcast ? g.float32(matmul) : matmul();
  const probs = g.float32(() => g.op('Softmax', [mask ? g.op('Add', [scores, mask]) : scores], { axis: -1 }));
  const out = g.op('MatMul', [probs, splitHeads(g, v, heads)]); // [B, H, N, D]
  return g.op('Reshape', [g.op('Transpose', [out], { perm: [0, 2, 1, 3] }), g.constInt64([0, 0, -1])]);
}

/** NCHW -> [B, H*W, C]. */
export function toTokens(g: GraphBuilder, x: string): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.constInt64([0, 0, -1])])], { perm: [0, 2, 1] });
}

/** [B, H*W, C] -> NCHW with the spatial shape of `like`. */
export function fromTokens(g: GraphBuilder, x: string, like: string): string {
  return g.op('Reshape', [g.op('Transpose', [x], { perm: [0, 2, 1] }), g.op('Shape', [like])]);
}

/** Nearest-neighbour upsampling of x to the spatial size of `like` (torch "nearest"). */
export function upsampleNearestLike(g: GraphBuilder, x: string, like: string): string {
  const batchChannels = g.op('Slice', [g.op('Shape', [x]), g.constInt64([0]), g.constInt64([2])]);
  const spatial = g.op('Slice', [g.op('Shape', [like]), g.constInt64([2]), g.constInt64([4])]);
  const sizes = g.op('Concat', [batchChannels, spatial], { axis: 0 });
  return g.op('Resize', [x, '', '', sizes], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
}

/** Nearest-neighbour 2x upsampling. */
export function upsampleNearest2x(g: GraphBuilder, x: string): string {
  return g.op('Resize', [x, '', g.constFloat([1, 1, 2, 2], [4], 'scales')], {
    mode: 'nearest',
    coordinate_transformation_mode: 'asymmetric',
    nearest_mode: 'floor',
  });
}
