/** Homographies from OpenCV storage XML (e.g. the Oxford/OpenCV `H1to3p.xml`), and point warping. */
import { readFileSync } from 'node:fs';
import { DataError } from '../core/errors.ts';

export type Homography = [number, number, number, number, number, number, number, number, number];

/** Read a 3x3 matrix: the `<data>` of an opencv-matrix, or a bare list of 9 numbers. */
export function readHomography(path: string): Homography {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`${path}: cannot read homography (${(e as Error).message})`, { cause: e });
  }
  const body = /<data>([\s\S]*?)<\/data>/.exec(text)?.[1] ?? text;
  const nums = body.trim().split(/\s+/).map(Number);
  if (nums.length !== 9 || !nums.every(Number.isFinite))
    throw new DataError(`${path}: expected 9 numbers for a 3x3 homography, got ${nums.length}`);
  return nums as Homography;
}

/** Apply H to [x, y] points (projective division). */
export function warpPoints(h: Homography, points: readonly [number, number][]): [number, number][] {
  return points.map(([x, y]) => {
    const w = h[6] * x + h[7] * y + h[8];
    return [(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w];
  });
}
