/**
 * Position-table interpolation for ViTs used at other input sizes, in the three variants the
 * checkpoints' own code uses (all float64 here, on the host; the graph takes the result):
 * - `size`: torch bicubic (a = -0.75, align_corners=False) to the target grid, source
 *   x = (o + 0.5) * in / out - 0.5, taps clamped at the border. DINO's ViTModel (transformers'
 *   ViTModel in every version with `interpolate_pos_encoding`), and Dinov2Model in transformers
 *   >= 4.44.
 * - `offset`: the same kernel with `scale_factor = (g + 0.1) / M` instead of a size, so the
 *   source coordinate is (o + 0.5) * M / (g + 0.1) - 0.5 (the "+0.1" of facebookresearch/dino
 *   issue 8): facebookresearch/dinov2's hub models (interpolate_offset 0.1), which SD-DINO
 *   uses, and transformers' Dinov2Model up to 4.43.
 * - `antialias`: torch bicubic with antialias=True to the target size (PIL's filter: a = -0.5,
 *   stretched by in/out when shrinking, weights renormalised inside the grid, no clamping):
 *   transformers' Dinov2WithRegistersModel, and facebookresearch/dinov2's `_reg` hub models.
 */
import { ConfigError, ModelError } from '../../core/errors.ts';
import { Tensor } from '../../core/tensor.ts';

export const POSITION_INTERPOLATIONS = ['size', 'offset', 'antialias'] as const;
export type PositionInterpolation = (typeof POSITION_INTERPOLATIONS)[number];

/** Cubic convolution weights for fractional offset t (a = -0.75: torch's bicubic). */
function cubicWeights(t: number, a = -0.75): number[] {
  const near = (x: number) => ((a + 2) * x - (a + 3)) * x * x + 1;
  const far = (x: number) => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Keys' cubic kernel at distance x. */
function cubic(x: number, a: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

type Taps = { i: number; wt: number }[][];

/** torch bicubic taps along one axis: `ratio` is in/out (from a size) or 1/scale_factor. */
function clampedTaps(n: number, N: number, ratio: number): Taps {
  return Array.from({ length: N }, (_, o) => {
    const x = (o + 0.5) * ratio - 0.5;
    const i0 = Math.floor(x);
    return cubicWeights(x - i0).map((wt, k) => ({ i: Math.min(Math.max(i0 - 1 + k, 0), n - 1), wt }));
  });
}

/** torch's antialiased bicubic taps along one axis (upsample_bicubic2d_aa, a = -0.5). */
function antialiasTaps(n: number, N: number): Taps {
  const scale = n / N;
  const support = scale >= 1 ? 2 * scale : 2;
  const inv = scale >= 1 ? 1 / scale : 1;
  return Array.from({ length: N }, (_, o) => {
    const center = scale * (o + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), n);
    const taps = [];
    for (let j = lo; j < hi; j++) taps.push({ i: j, wt: cubic((j - center + 0.5) * inv, -0.5) });
    const total = taps.reduce((s, t) => s + t.wt, 0);
    return total !== 0 ? taps.map((t) => ({ i: t.i, wt: t.wt / total })) : taps;
  });
}

function separable(src: Float64Array, c: number, h: number, w: number, ty: Taps, tx: Taps): Float64Array {
  const [H, W] = [ty.length, tx.length];
  const out = new Float64Array(c * H * W);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (const a of ty[y]) for (const b of tx[x]) s += a.wt * b.wt * src[ch * h * w + a.i * w + b.i];
        out[ch * H * W + y * W + x] = s;
      }
  return out;
}

/**
 * Bicubic resize of a [C, h, w] grid to [C, H, W] as torch.nn.functional.interpolate(mode=
 * "bicubic", align_corners=False) with `size` given. float64 throughout.
 */
export function bicubicResize(
  src: Float64Array,
  c: number,
  h: number,
  w: number,
  H: number,
  W: number,
): Float64Array {
  return separable(src, c, h, w, clampedTaps(h, H, h / H), clampedTaps(w, W, w / W));
}

/** Resize of a [C, n, n] grid to [C, gh, gw] the way `mode` names. */
export function resizeGrid(
  src: Float64Array,
  c: number,
  n: number,
  gh: number,
  gw: number,
  mode: PositionInterpolation,
): Float64Array {
  if (mode === 'antialias') return separable(src, c, n, n, antialiasTaps(n, gh), antialiasTaps(n, gw));
  if (mode === 'offset')
    return separable(src, c, n, n, clampedTaps(n, gh, n / (gh + 0.1)), clampedTaps(n, gw, n / (gw + 0.1)));
  return bicubicResize(src, c, n, n, gh, gw);
}

/**
 * The position table [1, 1 + N, D] for a gh x gw patch grid: the CLS entry as is, the patch
 * entries interpolated from their sqrt(N) x sqrt(N) grid. Unchanged when the grid is the
 * table's and the input square (every variant's shortcut; only `offset` would change it).
 */
export function interpolatePositions(
  table: Tensor,
  gh: number,
  gw: number,
  mode: PositionInterpolation = 'size',
  /** The input's pixel height equals its width (transformers skips interpolation only then). */
  squareInput = true,
): Tensor {
  if (!(POSITION_INTERPOLATIONS as readonly string[]).includes(mode))
    throw new ConfigError(
      `position interpolation "${mode}": expected ${POSITION_INTERPOLATIONS.join(' | ')}`,
    );
  const [, tokens, d] = table.shape;
  const n = tokens - 1;
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new ModelError(`position table of ${n} patches is not a square grid`);
  if (gh === side && gw === side && squareInput) return table;
  const grid = new Float64Array(d * n); // [D, side, side]
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) grid[c * n + i] = table.data[(1 + i) * d + c];
  const big = resizeGrid(grid, d, side, gh, gw, mode);
  const out = new Float32Array((1 + gh * gw) * d);
  out.set(table.data.subarray(0, d));
  for (let i = 0; i < gh * gw; i++) for (let c = 0; c < d; c++) out[(1 + i) * d + c] = big[c * gh * gw + i];
  return new Tensor(out, [1, 1 + gh * gw, d]);
}
