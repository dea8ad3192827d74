/**
 * Evaluation of dense predictions: least-squares scale and shift alignment (affine-invariant
 * depth or disparity), AbsRel and delta1 for depth, angular error statistics for normals.
 * Inputs are flat arrays of equal length; `valid` masks pixels (ground truth > 0 by default).
 */
import { ShapeError } from '../core/errors.ts';

function checkLengths(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length)
    throw new ShapeError(`${what}: prediction has ${a.length} values, ground truth ${b.length}`);
}

/** argmin_{s,t} sum (s * pred + t - gt)^2 over valid pixels (a mask of booleans or 0/1). */
export function alignScaleShift(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  valid?: ArrayLike<boolean | number>,
): { scale: number; shift: number } {
  checkLengths(pred, gt, 'alignScaleShift');
  let n = 0,
    sp = 0,
    sg = 0,
    spp = 0,
    spg = 0;
  for (let i = 0; i < pred.length; i++) {
    if (valid ? !valid[i] : !(gt[i] > 0)) continue;
    n++;
    sp += pred[i];
    sg += gt[i];
    spp += pred[i] * pred[i];
    spg += pred[i] * gt[i];
  }
  if (n < 2) throw new ShapeError('alignScaleShift: fewer than 2 valid pixels');
  const det = n * spp - sp * sp;
  if (det === 0) return { scale: 0, shift: sg / n };
  const scale = (n * spg - sp * sg) / det;
  return { scale, shift: (sg - scale * sp) / n };
}

export interface DepthMetrics {
  absRel: number;
  delta1: number;
  scale: number;
  shift: number;
}

/**
 * Align (in depth, or in disparity space for disparity predictions) then AbsRel = mean |d - g| / g
 * and delta1 = share of max(d/g, g/d) < 1.25, over pixels with valid ground-truth depth.
 */
export function depthMetrics(
  pred: ArrayLike<number>,
  gtDepth: ArrayLike<number>,
  o: { disparity?: boolean; valid?: ArrayLike<boolean> } = {},
): DepthMetrics {
  checkLengths(pred, gtDepth, 'depthMetrics');
  const valid = Array.from(
    { length: gtDepth.length },
    (_, i) => (o.valid ? o.valid[i] : true) && gtDepth[i] > 0,
  );
  const target = o.disparity ? Array.from(gtDepth, (g) => (g > 0 ? 1 / g : 0)) : gtDepth;
  const { scale, shift } = alignScaleShift(pred, target, valid);
  let n = 0,
    rel = 0,
    good = 0;
  for (let i = 0; i < pred.length; i++) {
    if (!valid[i]) continue;
    let d = scale * pred[i] + shift;
    if (o.disparity) d = 1 / Math.max(d, 1e-8);
    d = Math.max(d, 1e-8);
    const g = gtDepth[i];
    n++;
    rel += Math.abs(d - g) / g;
    if (Math.max(d / g, g / d) < 1.25) good++;
  }
  return { absRel: rel / n, delta1: good / n, scale, shift };
}

export interface NormalMetrics {
  meanAngle: number;
  medianAngle: number;
  within11_25: number;
  within22_5: number;
  within30: number;
}

/** Angular error in degrees between unit normals [N * 3] (ground truth of length ~0 is skipped). */
export function normalMetrics(pred: ArrayLike<number>, gt: ArrayLike<number>): NormalMetrics {
  checkLengths(pred, gt, 'normalMetrics');
  const angles: number[] = [];
  for (let i = 0; i < pred.length; i += 3) {
    const gn = Math.hypot(gt[i], gt[i + 1], gt[i + 2]);
    const pn = Math.hypot(pred[i], pred[i + 1], pred[i + 2]);
    if (gn < 1e-6 || pn < 1e-6) continue;
    const cos = (pred[i] * gt[i] + pred[i + 1] * gt[i + 1] + pred[i + 2] * gt[i + 2]) / (gn * pn);
    angles.push((Math.acos(Math.min(1, Math.max(-1, cos))) * 180) / Math.PI);
  }
  if (!angles.length) throw new ShapeError('normalMetrics: no valid ground-truth normals');
  angles.sort((a, b) => a - b);
  const share = (t: number) => angles.filter((a) => a < t).length / angles.length;
  return {
    meanAngle: angles.reduce((a, b) => a + b, 0) / angles.length,
    medianAngle: angles[Math.floor(angles.length / 2)],
    within11_25: share(11.25),
    within22_5: share(22.5),
    within30: share(30),
  };
}
