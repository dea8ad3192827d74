/**
 * Matching in image pixels: points [x, y] of one image's original pixels to [x, y] in the
 * other's, through the load-size frame the descriptors are matched in.
 */
import { ShapeError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import {
  matchPointsBatched,
  mutualNearestNeighbours,
  boxMask,
  rescalePoints,
  type PointYX,
} from './match.ts';

export interface Size {
  width: number;
  height: number;
}

export interface Correspondence {
  /** [x, y] in the source image's pixels. */
  source: [number, number];
  /** [x, y] in the target image's pixels. */
  target: [number, number];
  score: number;
}

/**
 * Nearest neighbours of `points` ([x, y] in the source image) in the target image.
 * @throws ShapeError for points outside the image or an empty list.
 */
export async function matchImagePoints(
  source: Tensor,
  target: Tensor,
  points: readonly [number, number][],
  sizes: { source: Size; target: Size; loadSize: number },
): Promise<Correspondence[]> {
  if (!points.length) throw new ShapeError('match: expected at least one point, got an empty list');
  const outside = points.filter(
    ([x, y]) => !(x >= 0 && y >= 0 && x <= sizes.source.width && y <= sizes.source.height),
  );
  if (outside.length) {
    throw new ShapeError(
      `match: points outside the ${sizes.source.width}x${sizes.source.height} source image: ${JSON.stringify(outside.slice(0, 5))}`,
    );
  }
  const load = { width: sizes.loadSize, height: sizes.loadSize };
  const yx = rescalePoints(
    points.map(([x, y]): PointYX => [y, x]),
    sizes.source,
    load,
  );
  const m = await matchPointsBatched(source, target, yx, { loadSize: sizes.loadSize });
  const tgt = rescalePoints(
    m.map((x) => x.target),
    load,
    sizes.target,
  );
  return m.map((x, i) => ({ source: [...points[i]], target: [tgt[i][1], tgt[i][0]], score: x.score }));
}

/**
 * Mutual nearest neighbours over the descriptor grids, as cell centres in image pixels. With
 * `foreground` boxes ([l, t, r, b] in each image's pixels, e.g. SPair's object boxes) only cells
 * inside them take part, as the original demo keeps matches on the objects.
 */
/** How many mutual matches a drawing shows by default (the SDK and `hyperfeatures match`). */
export const DEFAULT_MATCH_LIMIT = 50;

export async function mutualImageMatches(
  source: Tensor,
  target: Tensor,
  sizes: { source: Size; target: Size },
  limit = DEFAULT_MATCH_LIMIT,
  foreground: { source?: [number, number, number, number]; target?: [number, number, number, number] } = {},
): Promise<Correspondence[]> {
  const [, , h, w] = source.shape;
  const [, , h2, w2] = target.shape;
  const masks = {
    sourceMask: foreground.source && boxMask(foreground.source, h, w, sizes.source),
    targetMask: foreground.target && boxMask(foreground.target, h2, w2, sizes.target),
  };
  return (await mutualNearestNeighbours(source, target, masks)).slice(0, limit).map((m) => ({
    source: [((m.source[1] + 0.5) * sizes.source.width) / w, ((m.source[0] + 0.5) * sizes.source.height) / h],
    target: [
      ((m.target[1] + 0.5) * sizes.target.width) / w2,
      ((m.target[0] + 0.5) * sizes.target.height) / h2,
    ],
    score: m.score,
  }));
}
