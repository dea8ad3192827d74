/**
 * DINOv2 alone (not in the paper), by SD-DINO's protocol: each image letterboxed onto an
 * 840 px canvas (PIL LANCZOS, zero padding), the token facet of the last block on the 60 x 60
 * patch grid, the source keypoint's patch against every target patch by cosine, the best
 * patch's centre mapped back to the target image.
 */
import { ConfigError } from '../../core/errors.ts';
import { fromCanvas, fuse, gridMatch, toCanvas } from '../sd-dino.ts';
import { defineMethod, type Requirement } from './method.ts';
import { dinov2Grid, sdDinoSettings } from './sd-dino-features.ts';
import type { EvalOptions } from '../evaluate.ts';

export function dinov2Requirement(o: EvalOptions): Requirement | undefined {
  return o.dinov2
    ? undefined
    : {
        key: 'dinov2',
        message: (methods) =>
          `method(s) ${methods.join(', ')} need DINOv2: pass --dinov2 facebook/dinov2-base (a transformers folder or hub id; --allow-download to fetch it)`,
      };
}

/** Refuses canvas sizes off DINOv2's patch grid before any work. */
export function checkDinoSize(o: EvalOptions): void {
  const size = sdDinoSettings(o.sdDino).dinoSize;
  const p = o.dinov2?.config.patchSize ?? 14;
  if (!Number.isInteger(size) || size < p || size % p)
    throw new ConfigError(
      `DINOv2 canvas ${size} px: must be a multiple of the patch size ${p} (nearest: ${Math.max(p, Math.round(size / p) * p)}; SD-DINO's is 840)`,
    );
}

export const dinov2 = defineMethod({
  key: 'dinov2',
  byDefault: false,
  showsPublished: true,
  row: { label: 'DINOv2 (not in the paper)', layers: '1', timesteps: '-' },
  uses: ['dinov2-grid'],
  requires: dinov2Requirement,
  check: (o) => checkDinoSize(o),
  describe: (o) => {
    const s = sdDinoSettings(o.sdDino);
    return {
      layers: 1,
      timesteps: 0,
      definition: `${o.dinov2 ? o.dinov2.describe() : 'DINOv2'}; SD-DINO's protocol: letterboxed to ${s.dinoSize} px (PIL LANCZOS, zero padding), cosine nearest patch of the keypoint's patch, its centre`,
    };
  },
  predict: async (f) => {
    const { maps, boxes } = await dinov2Grid(f);
    const size = sdDinoSettings(f.run.o.sdDino).dinoSize;
    const patch = f.run.o.dinov2!.config.patchSize;
    const [a, b] = maps.map((m) => fuse(undefined, m, 1));
    const hits = await gridMatch(a, b, toCanvas(f.pair.sourcePoints, boxes[0]), { size, patch });
    return fromCanvas(hits, boxes[1]);
  },
});
