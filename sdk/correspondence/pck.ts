/**
 * PCK@alpha: a predicted keypoint is correct when its distance to the ground truth is at
 * most alpha x max(W, H) of the image (`img`) or of the object box (`bbox`). Reported per
 * keypoint (pooled over pairs, the paper's number) and per image (mean of per-pair PCK).
 */
import { ShapeError } from '../core/errors.ts';
import type { PointYX } from './match.ts';

export const PCK_ALPHAS = [0.05, 0.1, 0.15] as const;

export interface PckPair {
  predicted: PointYX[];
  groundTruth: PointYX[];
  /** Target image size, and the target box [left, top, right, bottom] for bbox PCK. */
  imageSize: { width: number; height: number };
  bbox?: [number, number, number, number];
  category?: string;
}

export function distances(pred: readonly PointYX[], gt: readonly PointYX[]): number[] {
  if (pred.length !== gt.length)
    throw new ShapeError(`PCK: ${pred.length} predictions for ${gt.length} ground-truth points`);
  return pred.map(([y, x], i) => Math.hypot(y - gt[i][0], x - gt[i][1]));
}

export function pckThreshold(pair: PckPair, alpha: number, by: 'img' | 'bbox'): number {
  if (by === 'img') return alpha * Math.max(pair.imageSize.width, pair.imageSize.height);
  if (!pair.bbox) throw new ShapeError('PCK by bbox needs the target bounding box');
  const [l, t, r, b] = pair.bbox;
  return alpha * Math.max(r - l, b - t);
}

export interface PckResult {
  /** Correct keypoints / all keypoints (pooled). */
  perKeypoint: number;
  /** Mean over pairs of each pair's PCK. */
  perImage: number;
  keypoints: number;
  byCategory: Record<string, { perKeypoint: number; perImage: number; keypoints: number }>;
}

/** PCK over pairs for one alpha and normalisation. */
export function computePck(pairs: readonly PckPair[], alpha: number, by: 'img' | 'bbox'): PckResult {
  const groups = new Map<string, { correct: number; total: number; perImage: number[] }>();
  const all = { correct: 0, total: 0, perImage: [] as number[] };
  for (const p of pairs) {
    const th = pckThreshold(p, alpha, by);
    const ok = distances(p.predicted, p.groundTruth).filter((d) => d <= th).length;
    const n = p.groundTruth.length;
    const cat = groups.get(p.category ?? '') ?? { correct: 0, total: 0, perImage: [] };
    for (const acc of [all, cat]) {
      acc.correct += ok;
      acc.total += n;
      if (n) acc.perImage.push(ok / n);
    }
    groups.set(p.category ?? '', cat);
  }
  const summary = (a: { correct: number; total: number; perImage: number[] }) => ({
    perKeypoint: a.total ? a.correct / a.total : 0,
    perImage: a.perImage.length ? a.perImage.reduce((x, y) => x + y, 0) / a.perImage.length : 0,
    keypoints: a.total,
  });
  return { ...summary(all), byCategory: Object.fromEntries([...groups].map(([k, v]) => [k, summary(v)])) };
}
