/** DINO (Caron et al. 2021): ViT facet descriptors, the paper's DINO row. */
import { defineMethod } from './method.ts';

export const dino = defineMethod({
  key: 'dino',
  byDefault: false,
  uses: ['dino'],
  requires: (o) =>
    o.dino
      ? undefined
      : {
          key: 'dino',
          message: () =>
            'method dino needs the DINO ViT: pass --dino facebook/dino-vitb8 (a transformers folder or hub id; --allow-download to fetch it)',
        },
  describe: (o) => ({
    layers: 1,
    timesteps: 0,
    definition: o.dino ? o.dino.describe() : 'DINO ViT descriptors',
  }),
  descriptors: (f) =>
    f.get('dino', () =>
      Promise.all(
        [f.pair.source, f.pair.target].map((img) =>
          f.run.o.dino!.describeImage(img, {
            loadSize: f.run.loadSize,
            colorManaged: f.run.o.extract?.colorManaged,
          }),
        ),
      ),
    ),
});
