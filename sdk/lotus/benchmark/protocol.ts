/**
 * The zero-shot protocol of the Marigold / Lotus evaluation code, per image:
 * - depth: least-squares scale and shift to the ground truth over valid pixels (in depth space,
 *   or in disparity space for disparity models), optionally fitted on a nearest-downsampled copy;
 *   the aligned prediction clipped to the dataset's depth range (and > 0); then AbsRel, SqRel,
 *   RMSE, RMSE log, log10, delta1-3, iRMSE and SILog over valid pixels; datasets average images.
 * - normals: angular error per valid pixel, pooled over the whole dataset: mean, median, RMSE and
 *   the shares under 5, 7.5, 11.25, 22.5 and 30 degrees. A record keeps sums, counts and a
 *   1e-3-degree histogram (histogram.ts), so pooling over records (a resumed or sharded run) is
 *   exact, the median to within 5e-4 degrees of np.median over all pixels.
 */
import { ShapeError } from '../../core/errors.ts';
import { alignScaleShift } from '../metrics.ts';
import { FINE_BIN, FINE_BINS, addFine, encodeFine, fineBin, histogramMedian } from './histogram.ts';

export const DEPTH_METRICS = [
  'abs_rel',
  'sq_rel',
  'rmse',
  'rmse_log',
  'log10',
  'delta1',
  'delta2',
  'delta3',
  'i_rmse',
  'silog_rmse',
] as const;
export type DepthMetricName = (typeof DEPTH_METRICS)[number];
export type DepthRecordMetrics = Record<DepthMetricName, number>;

export const NORMAL_THRESHOLDS = [5, 7.5, 11.25, 22.5, 30] as const;
/** The coarse bins of records written before the fine histogram existed. */
const COARSE_BIN = 0.1;

/** Nearest downsampling as torch's Upsample(scale_factor, mode="nearest"). */
function nearestDown(
  a: ArrayLike<number>,
  w: number,
  h: number,
  s: number,
): { data: Float64Array; w: number; h: number } {
  const [W, H] = [Math.floor(w * s), Math.floor(h * s)];
  const out = new Float64Array(W * H);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      out[y * W + x] = a[Math.min(Math.floor(y / s), h - 1) * w + Math.min(Math.floor(x / s), w - 1)];
  return { data: out, w: W, h: H };
}

export interface AlignOptions {
  width: number;
  height: number;
  /** Align in disparity space (for disparity-predicting models). */
  disparity?: boolean;
  /** Fit on a copy whose longest side is at most this (nearest), as ETH3D's config asks. */
  maxRes?: number;
  minDepth: number;
  maxDepth: number;
}

/** The aligned, clipped depth prediction, and the scale and shift. */
export function alignDepth(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  valid: ArrayLike<number>,
  o: AlignOptions,
): { depth: Float64Array; scale: number; shift: number } {
  if (pred.length !== gt.length || valid.length !== gt.length)
    throw new ShapeError(
      `alignDepth: prediction ${pred.length}, ground truth ${gt.length}, mask ${valid.length} values`,
    );
  const target = o.disparity ? Float64Array.from(gt, (g) => (g > 0 ? 1 / g : 0)) : Float64Array.from(gt);
  const mask = o.disparity
    ? Uint8Array.from(valid, (v, i) => (v && gt[i] > 0 && pred[i] > 0 ? 1 : 0))
    : valid;
  let [p, g, m]: [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>] = [pred, target, mask];
  const s = o.maxRes ? Math.min(o.maxRes / o.width, o.maxRes / o.height) : 1;
  if (s < 1)
    [p, g, m] = [pred, target, mask].map((a) => nearestDown(a, o.width, o.height, s).data) as (typeof p)[];
  const { scale, shift } = alignScaleShift(p, g, m);
  const depth = new Float64Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    let d = scale * pred[i] + shift;
    if (o.disparity) d = 1 / Math.max(d, 1e-3);
    depth[i] = Math.max(Math.min(Math.max(d, o.minDepth), o.maxDepth), 1e-6);
  }
  return { depth, scale, shift };
}

/** The standard depth metrics of an aligned prediction over valid pixels (Marigold's definitions). */
export function depthErrors(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  valid: ArrayLike<number>,
): DepthRecordMetrics {
  let n = 0;
  const acc = { abs: 0, sq: 0, se: 0, log: 0, l10: 0, d1: 0, d2: 0, d3: 0, inv: 0, dlog: 0 };
  for (let i = 0; i < gt.length; i++) {
    if (!valid[i]) continue;
    const [p, g] = [pred[i], gt[i]];
    n++;
    acc.abs += Math.abs(p - g) / g;
    acc.sq += (p - g) ** 2 / g;
    acc.se += (p - g) ** 2;
    const dl = Math.log(p) - Math.log(g);
    acc.log += dl * dl;
    acc.dlog += dl;
    acc.l10 += Math.abs(Math.log10(p) - Math.log10(g));
    const r = Math.max(p / g, g / p);
    if (r < 1.25) acc.d1++;
    if (r < 1.25 ** 2) acc.d2++;
    if (r < 1.25 ** 3) acc.d3++;
    acc.inv += (1 / p - 1 / g) ** 2;
  }
  if (!n) throw new ShapeError('depthErrors: no valid pixels');
  return {
    abs_rel: acc.abs / n,
    sq_rel: acc.sq / n,
    rmse: Math.sqrt(acc.se / n),
    rmse_log: Math.sqrt(acc.log / n),
    log10: acc.l10 / n,
    delta1: acc.d1 / n,
    delta2: acc.d2 / n,
    delta3: acc.d3 / n,
    i_rmse: Math.sqrt(acc.inv / n),
    silog_rmse: Math.sqrt(acc.log / n - (acc.dlog / n) ** 2) * 100,
  };
}

/** Angular-error statistics of one image, poolable across images. */
export interface NormalErrorStats {
  n: number;
  sum: number;
  sumSq: number;
  /** Counts of errors below each of NORMAL_THRESHOLDS. */
  below: number[];
  /** The errors' 1e-3-degree histogram, encoded (histogram.ts). */
  fine?: string;
  /** Records from before `fine`: a sparse 0.1-degree histogram, bin index -> count. */
  hist?: Record<string, number>;
}

/** Angular errors (degrees) between predicted and true normals [N*3] over valid pixels. */
export function normalErrorStats(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  valid: ArrayLike<number>,
): NormalErrorStats {
  if (pred.length !== gt.length || gt.length !== valid.length * 3)
    throw new ShapeError(
      `normalErrorStats: prediction ${pred.length}, ground truth ${gt.length}, mask ${valid.length} values`,
    );
  const s: NormalErrorStats = { n: 0, sum: 0, sumSq: 0, below: NORMAL_THRESHOLDS.map(() => 0) };
  const counts = new Uint32Array(FINE_BINS);
  for (let i = 0; i < valid.length; i++) {
    if (!valid[i]) continue;
    const [a, b] = [i * 3, i * 3];
    const pn = Math.hypot(pred[a], pred[a + 1], pred[a + 2]) || 1;
    const gn = Math.hypot(gt[b], gt[b + 1], gt[b + 2]) || 1;
    const cos = (pred[a] * gt[b] + pred[a + 1] * gt[b + 1] + pred[a + 2] * gt[b + 2]) / (pn * gn);
    const e = (Math.acos(Math.min(1, Math.max(-1, cos))) * 180) / Math.PI;
    s.n++;
    s.sum += e;
    s.sumSq += e * e;
    NORMAL_THRESHOLDS.forEach((t, k) => void (e < t && s.below[k]++));
    counts[fineBin(e)]++;
  }
  s.fine = encodeFine(counts);
  return s;
}

export interface NormalSummary {
  pixels: number;
  mean: number;
  median: number;
  /** The median's resolution in degrees: 1e-3 bins (0.1 when older records joined the pool). */
  medianBin: number;
  rmse: number;
  /** Percent of pixels under 5, 7.5, 11.25, 22.5, 30 degrees. */
  within: Record<string, number>;
}

/** Pool per-image statistics (DSINE's numbers are over all pixels of the dataset). */
export function poolNormalStats(all: readonly NormalErrorStats[]): NormalSummary {
  const n = all.reduce((a, s) => a + s.n, 0);
  if (!n) throw new ShapeError('poolNormalStats: no valid pixels');
  // exact pooling needs every record's fine histogram; older records leave the 0.1-degree one
  const fine = all.every((s) => s.fine !== undefined);
  const width = fine ? FINE_BIN : COARSE_BIN;
  const hist = new Float64Array(fine ? FINE_BINS : 1800);
  for (const s of all) {
    if (fine) {
      if (addFine(hist, s.fine!) !== s.n)
        throw new ShapeError(`poolNormalStats: a record's histogram does not hold its ${s.n} errors`);
    } else if (s.hist) for (const [k, v] of Object.entries(s.hist)) hist[Number(k)] += v;
    else {
      const coarse = new Float64Array(FINE_BINS);
      addFine(coarse, s.fine!);
      coarse.forEach((v, b) => void (v && (hist[Math.floor(b / 100)] += v)));
    }
  }
  const median = histogramMedian(hist, n, width);
  return {
    pixels: n,
    mean: all.reduce((a, s) => a + s.sum, 0) / n,
    median,
    medianBin: width,
    rmse: Math.sqrt(all.reduce((a, s) => a + s.sumSq, 0) / n),
    within: Object.fromEntries(
      NORMAL_THRESHOLDS.map((t, k) => [String(t), (100 * all.reduce((a, s) => a + s.below[k], 0)) / n]),
    ),
  };
}
