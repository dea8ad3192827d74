/**
 * Nearest-neighbour correspondences on cosine similarity, with the original code's
 * coordinate conventions (find_nn_source_correspondences): both descriptor maps are
 * upsampled (bilinear) to the load size, source points (y, x) at load size are clipped and
 * rounded half-to-even to pixels, and the argmax pixel of the target map is the match.
 */
import { ShapeError } from '../core/errors.ts';
import { fmtShape } from '../core/messages.ts';
import { Tensor, resizeBilinear, sampleBilinear } from '../core/tensor.ts';
import { batchedArgmax, bidirectionalArgmax, partialSimilarity } from './similarity.ts';
import { roundHalfEven } from '../core/validate.ts';

export type PointYX = [number, number];

export interface Match {
  /** The source point as given (y, x). */
  source: PointYX;
  /** Best target pixel (y, x) at load size. */
  target: PointYX;
  /** Cosine similarity of the match. */
  score: number;
}

/** Pixel index of (y, x) on an H x W grid: clip, round half to even, y * W + x. */
export function pointIndex([y, x]: PointYX, height: number, width: number): number {
  return (
    roundHalfEven(Math.min(Math.max(y, 0), height - 1)) * width +
    roundHalfEven(Math.min(Math.max(x, 0), width - 1))
  );
}

/** [1, P, H, W] -> unit-norm pixel descriptors, pixel-major [H*W][P] in one Float32Array. */
export function unitPixels(d: Tensor): Float32Array {
  const [, P, H, W] = d.shape;
  const n = H * W;
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < P; c++) {
      const v = d.data[c * n + i];
      out[i * P + c] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s || 1);
    for (let c = 0; c < P; c++) out[i * P + c] *= inv;
  }
  return out;
}

function checkPair(a: Tensor, b: Tensor): void {
  a.expectShape('source descriptors', [1, -1, -1, -1]);
  b.expectShape('target descriptors', [1, -1, -1, -1]);
  if (a.shape[1] !== b.shape[1])
    throw new ShapeError(`descriptor dims differ: source ${fmtShape(a.shape)}, target ${fmtShape(b.shape)}`);
}

/**
 * Cosine similarity of selected source pixels against every target pixel: [K][H*W] rows,
 * one blocked dot-product loop (the same work as one matrix product).
 */
export function similarityRows(
  srcUnit: Float32Array,
  rows: readonly number[],
  tgtUnit: Float32Array,
  dim: number,
): Float32Array[] {
  const n = tgtUnit.length / dim;
  return rows.map((r) => {
    const q = srcUnit.subarray(r * dim, (r + 1) * dim);
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      const off = j * dim;
      for (let c = 0; c < dim; c++) s += q[c] * tgtUnit[off + c];
      out[j] = s;
    }
    return out;
  });
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

export interface MatchOptions {
  /** Square size the descriptors are upsampled to; points are in this frame. Default: descriptor size. */
  loadSize?: number;
}

function prepare(source: Tensor, target: Tensor, points: readonly PointYX[], o: MatchOptions) {
  checkPair(source, target);
  if (!points.length) throw new ShapeError('matchPoints: expected at least one source point, got none');
  const size = o.loadSize ?? source.shape[2];
  const up = (t: Tensor) => (t.shape[2] === size && t.shape[3] === size ? t : resizeBilinear(t, size, size));
  const [a, b] = [unitPixels(up(source)), unitPixels(up(target))];
  return { size, a, b, dim: source.shape[1], rows: points.map((p) => pointIndex(p, size, size)) };
}

/**
 * Nearest neighbours in `target` of `points` (y, x at load size) of `source` (JS loop:
 * small maps and few points).
 * @throws ShapeError for mismatched descriptors or no points.
 */
export function matchPoints(
  source: Tensor,
  target: Tensor,
  points: readonly PointYX[],
  o: MatchOptions = {},
): Match[] {
  const { size, a, b, dim, rows } = prepare(source, target, points, o);
  return similarityRows(a, rows, b, dim).map((row, k) => {
    const j = argmax(row);
    return { source: [...points[k]] as PointYX, target: [Math.floor(j / size), j % size], score: row[j] };
  });
}

/** The same as `matchPoints`, as one onnxruntime matrix product (large maps, many points). */
export async function matchPointsBatched(
  source: Tensor,
  target: Tensor,
  points: readonly PointYX[],
  o: MatchOptions = {},
): Promise<Match[]> {
  const { size, a, b, dim, rows } = prepare(source, target, points, o);
  const queries = new Float32Array(rows.length * dim);
  rows.forEach((r, k) => queries.set(a.subarray(r * dim, (r + 1) * dim), k * dim));
  const { best, score } = await batchedArgmax(queries, b, dim);
  return best.map((j, k) => ({
    source: [...points[k]] as PointYX,
    target: [Math.floor(j / size), j % size] as PointYX,
    score: score[k],
  }));
}

/**
 * The same as `matchPoints` for descriptors too wide to upsample whole (SD-Concat-All: 10560
 * channels at 224x224 would be 2 GB per image): channels are taken in chunks, each chunk is
 * upsampled and its dot products and squared norms are accumulated, so memory is one chunk.
 * Bilinear upsampling is linear per channel, so the result equals the unchunked cosine.
 */
export async function matchPointsChunked(
  source: Tensor,
  target: Tensor,
  points: readonly PointYX[],
  o: MatchOptions & { chunk?: number } = {},
): Promise<Match[]> {
  checkPair(source, target);
  if (!points.length) throw new ShapeError('matchPoints: expected at least one source point, got none');
  const size = o.loadSize ?? source.shape[2];
  const chunk = o.chunk ?? 512;
  const [, D, h, w] = source.shape;
  const [, , h2, w2] = target.shape;
  const rows = points.map((p) => pointIndex(p, size, size));
  const n = size * size;
  const dots = rows.map(() => new Float64Array(n));
  const targetNorm = new Float64Array(n);
  const queryNorm = new Float64Array(rows.length);
  const up = (t: Tensor) => (t.shape[2] === size && t.shape[3] === size ? t : resizeBilinear(t, size, size));
  for (let c0 = 0; c0 < D; c0 += chunk) {
    const c = Math.min(chunk, D - c0);
    // the source is only needed at the query pixels: sampled, not upsampled whole
    const chunkOf = (t: Tensor, hh: number, ww: number) =>
      new Tensor(t.data.subarray(c0 * hh * ww, (c0 + c) * hh * ww), [1, c, hh, ww]);
    const a = sampleBilinear(chunkOf(source, h, w), size, size, rows);
    const b = up(chunkOf(target, h2, w2));
    const queries = new Float32Array(rows.length * c);
    a.forEach((q, k) => {
      queries.set(q, k * c);
      for (const v of q) queryNorm[k] += v * v;
    });
    const part = await partialSimilarity(queries, b.data, c);
    rows.forEach((_, k) => {
      const d = dots[k];
      for (let j = 0; j < n; j++) d[j] += part.dots[k * n + j];
    });
    for (let j = 0; j < n; j++) targetNorm[j] += part.norms[j];
  }
  return rows.map((_, k) => {
    let best = 0;
    let score = -Infinity;
    const qn = Math.sqrt(queryNorm[k] || 1);
    for (let j = 0; j < n; j++) {
      const s = dots[k][j] / (qn * Math.sqrt(targetNorm[j] || 1));
      if (s > score) [best, score] = [j, s];
    }
    return { source: [...points[k]] as PointYX, target: [Math.floor(best / size), best % size], score };
  });
}

/**
 * Mutual nearest neighbours over all pixels at descriptor resolution: pairs (i -> j) with
 * j's nearest neighbour back in the source being i. Sorted by score, best first. Both
 * directions come from one similarity matrix product in onnxruntime.
 */
export async function mutualNearestNeighbours(
  source: Tensor,
  target: Tensor,
  o: { sourceMask?: ArrayLike<boolean>; targetMask?: ArrayLike<boolean> } = {},
): Promise<Match[]> {
  checkPair(source, target);
  const [, P, h, W] = source.shape;
  const [, , h2, W2] = target.shape;
  // only masked pixels (e.g. the object's box) take part, in both directions
  const keep = (n: number, mask?: ArrayLike<boolean>) => {
    if (mask && mask.length !== n)
      throw new ShapeError(`mask: expected ${n} values (one per pixel), got ${mask.length}`);
    return Array.from({ length: n }, (_, i) => i).filter((i) => !mask || mask[i]);
  };
  const [ka, kb] = [keep(h * W, o.sourceMask), keep(h2 * W2, o.targetMask)];
  if (!ka.length || !kb.length) return [];
  const rows = (unit: Float32Array, idx: number[]) => {
    const out = new Float32Array(idx.length * P);
    idx.forEach((i, r) => out.set(unit.subarray(i * P, (i + 1) * P), r * P));
    return out;
  };
  const { forward, backward, score } = await bidirectionalArgmax(
    rows(unitPixels(source), ka),
    rows(unitPixels(target), kb),
    P,
  );
  const out: Match[] = [];
  forward.forEach((j, r) => {
    if (backward[j] !== r) return;
    const [i, t] = [ka[r], kb[j]];
    out.push({ source: [Math.floor(i / W), i % W], target: [Math.floor(t / W2), t % W2], score: score[r] });
  });
  return out.sort((x, y) => y.score - x.score);
}

/** Pixels of an h x w grid over an image of `size` whose centres fall inside box [l, t, r, b]. */
export function boxMask(
  box: readonly [number, number, number, number],
  h: number,
  w: number,
  size: { width: number; height: number },
): boolean[] {
  const [l, t, r, b] = box;
  return Array.from({ length: h * w }, (_, i) => {
    const x = ((i % w) + 0.5) * (size.width / w);
    const y = (Math.floor(i / w) + 0.5) * (size.height / h);
    return x >= l && x <= r && y >= t && y <= b;
  });
}

/** Rescale (y, x) points from one (w, h) frame to another (original `rescale_points`). */
export function rescalePoints(
  points: readonly PointYX[],
  from: { width: number; height: number },
  to: { width: number; height: number },
): PointYX[] {
  return points.map(([y, x]) => [(y * to.height) / from.height, (x * to.width) / from.width]);
}

/** Above this many channels, similarity is accumulated over channel chunks (the upsampled map would not fit). */
export const CHUNKED_DIM = 2048;
