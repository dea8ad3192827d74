/**
 * Training pairs with exact ground truth from any photos: each image and its horizontal
 * mirror, so grid cell (y, x) corresponds to (y, R-1-x). Useful to train or sanity-check an
 * aggregation network without keypoint annotations.
 */
import sharp from 'sharp';
import { Rng } from '../../core/rng.ts';
import { concat, type Tensor } from '../../core/tensor.ts';
import { decodeImage, type RgbImage } from '../../data/image.ts';
import { invertImages, type ExtractOptions } from '../../diffusion/extract.ts';
import type { StableDiffusion } from '../../diffusion/pipeline.ts';
import type { TrainingPair } from './loop.ts';

async function mirror(path: string, colorManaged?: boolean): Promise<RgbImage> {
  const d = await decodeImage(path, { colorManaged });
  const { data, info } = await sharp(d.data, { raw: { width: d.width, height: d.height, channels: 3 } })
    .flop()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

/** Features [2, S*sum(C), R, R] of each photo and its mirror, plus `points` random cell pairs. */
export async function mirroredPairs(
  sd: StableDiffusion,
  photos: string[],
  o: { resolution: number; points?: number; seed?: number; extract?: ExtractOptions },
): Promise<TrainingPair[]> {
  const R = o.resolution;
  const a = await invertImages(sd, photos, o.extract);
  const b = await invertImages(
    sd,
    await Promise.all(photos.map((p) => mirror(p, o.extract?.colorManaged))),
    o.extract,
  );
  const rng = new Rng(o.seed ?? 0);
  return a.map((s, i) => {
    const source = Array.from({ length: o.points ?? 40 }, (): [number, number] => [rng.int(R), rng.int(R)]);
    const features: Tensor = concat([s.concat(R), b[i].concat(R)], 0);
    return { features, source, target: source.map(([y, x]): [number, number] => [y, R - 1 - x]) };
  });
}
