/**
 * SD-DINO (Zhang et al., NeurIPS 2023; not in the paper), zero-shot: SD decoder features
 * (ODISE's output_blocks 2, 5, 8 inputs at t = 100 on a 960 px letterbox, co-PCA 256 each)
 * and DINOv2 tokens (840 px letterbox), each L2-normalised, weighted and concatenated, L2
 * nearest patch. Our own UNet computes the SD part (noised extraction, one noise); where the
 * original conditions on ODISE's trained implicit captioner, the category prompt is used, or
 * given embeddings.
 */
import { ConfigError } from '../../core/errors.ts';
import { tapCount } from '../../model/unet/config.ts';
import { checkDinoWeight, fromCanvas, fuse, gridMatch, toCanvas } from '../sd-dino.ts';
import { resizeBilinear } from '../../core/tensor.ts';
import { checkDinoSize, dinov2Requirement } from './dinov2.ts';
import { defineMethod } from './method.ts';
import { dinov2Grid, sdDinoSd, sdDinoSettings } from './sd-dino-features.ts';

export const sdDino = defineMethod({
  key: 'sd-dino',
  byDefault: false,
  showsPublished: true,
  row: { label: 'SD-DINO (zero-shot fusion; not in the paper)', layers: '3', timesteps: '1' },
  uses: ['dinov2-grid', 'sd-dino-sd'],
  requires: dinov2Requirement,
  check: (o, sd) => {
    const s = sdDinoSettings(o.sdDino);
    checkDinoWeight(s.dinoWeight);
    checkDinoSize(o);
    if (!Number.isInteger(s.sdSize) || s.sdSize < 64 || s.sdSize % 64)
      throw new ConfigError(
        `sd-dino: the SD canvas ${s.sdSize} px must be a multiple of 64 (its three stages at 1/64, 1/32, 1/16; SD-DINO's is 960)`,
      );
    if (tapCount(sd.unet.config) < 9)
      throw new ConfigError(
        `sd-dino needs decoder resnets 2, 5 and 8; this UNet has ${tapCount(sd.unet.config)}`,
      );
    if (
      !Array.isArray(s.pcaDims) ||
      s.pcaDims.length !== 3 ||
      !s.pcaDims.every((d) => Number.isInteger(d) && d > 0)
    )
      throw new ConfigError(
        `sd-dino: pcaDims must be three positive integers, got ${JSON.stringify(s.pcaDims)}`,
      );
  },
  describe: (o) => {
    const s = sdDinoSettings(o.sdDino);
    const text = s.embeddings
      ? 'given embeddings (--embeddings)'
      : `the prompt "${s.prompt}" (the original: ODISE's implicit captioner)`;
    return {
      layers: 3,
      timesteps: 1,
      definition: `SD-DINO zero-shot: SD decoder resnet inputs 2, 5, 8 (ODISE's output_blocks) at t = ${s.timestep} on a ${s.sdSize} px letterbox, one seeded noise (seed ${s.seed}), conditioned on ${text}, co-PCA of the pair to [${s.pcaDims.join(', ')}] per stage (exact subspace; the original's pca_lowrank is randomized), upsampled and concatenated; ${o.dinov2 ? o.dinov2.describe() : 'DINOv2'} on a ${s.dinoSize} px letterbox; each part L2-normalised, weighted SD ${1 - s.dinoWeight} : DINOv2 ${s.dinoWeight}, L2 nearest patch, its centre`,
    };
  },
  predict: async (f) => {
    const s = sdDinoSettings(f.run.o.sdDino);
    const { maps, boxes } = await dinov2Grid(f);
    const sd = s.dinoWeight < 1 ? await sdDinoSd(f) : [undefined, undefined];
    const [, , gh, gw] = maps[0].shape;
    // on SD-DINO's sizes both grids are 60 x 60; other sizes are brought to DINOv2's grid
    const grid = (t: (typeof sd)[number]) =>
      t && (t.shape[2] !== gh || t.shape[3] !== gw) ? resizeBilinear(t, gh, gw) : t;
    const [a, b] = [0, 1].map((k) => fuse(grid(sd[k]), maps[k], s.dinoWeight));
    const patch = f.run.o.dinov2!.config.patchSize;
    const hits = await gridMatch(a, b, toCanvas(f.pair.sourcePoints, boxes[0]), { size: s.dinoSize, patch });
    return fromCanvas(hits, boxes[1]);
  },
});
