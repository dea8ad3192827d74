/** The letterboxed inputs and the DINOv2 / SD maps `dinov2` and `sd-dino` share per pair. */
import { ConfigError } from '../../core/errors.ts';
import type { RgbImage } from '../../core/rgb.ts';
import type { Tensor } from '../../core/tensor.ts';
import { decodeImage } from '../../data/image.ts';
import { dinoPixels } from '../../model/dino/index.ts';
import type { SdDinoOptions } from '../evaluate.ts';
import {
  letterboxImage,
  sdDinoSdDescriptors,
  sdDinoStages,
  SD_DINO_DEFAULTS,
  type Letterbox,
} from '../sd-dino.ts';
import type { PairFeatures } from './method.ts';

export type SdDinoSettings = Required<Omit<SdDinoOptions, 'embeddings'>> & Pick<SdDinoOptions, 'embeddings'>;

export function sdDinoSettings(o: SdDinoOptions = {}): SdDinoSettings {
  const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return { ...SD_DINO_DEFAULTS, pcaDims: [...SD_DINO_DEFAULTS.pcaDims], ...given } as SdDinoSettings;
}

const stem = (p: unknown) =>
  typeof p === 'string' ? (p.split(/[\\/]/).pop() ?? p).replace(/\.[^.]*$/, '') : 'default';

/** Both images decoded (as the other rows decode them). */
function decoded(f: PairFeatures): Promise<RgbImage[]> {
  return f.get('rgb', () =>
    Promise.all(
      [f.pair.source, f.pair.target].map((p) =>
        decodeImage(p, { colorManaged: f.run.o.extract?.colorManaged }),
      ),
    ),
  );
}

/** DINOv2 descriptor maps of both images on their dinoSize canvases, and where each image sits. */
export function dinov2Grid(f: PairFeatures): Promise<{ maps: Tensor[]; boxes: Letterbox[] }> {
  return f.get('dinov2-grid', async () => {
    const s = sdDinoSettings(f.run.o.sdDino);
    const model = f.run.o.dinov2!;
    const boxed = (await decoded(f)).map((img) => letterboxImage(img, s.dinoSize));
    const maps = [];
    for (const b of boxed) maps.push(await model.describePixels(dinoPixels(b.image)));
    return { maps, boxes: boxed.map((b) => b.box) };
  });
}

/** SD-DINO's SD descriptors of the pair (co-PCA'd together), on their sdSize canvases. */
export function sdDinoSd(f: PairFeatures): Promise<Tensor[]> {
  return f.get('sd-dino-sd', async () => {
    const s = sdDinoSettings(f.run.o.sdDino);
    const { sd } = f.run;
    const images = (await decoded(f)).map((img) => letterboxImage(img, s.sdSize).image);
    const paths = [f.pair.source, f.pair.target];
    const stages: Tensor[][] = [];
    for (const [k, image] of images.entries()) {
      const conditioning = s.embeddings
        ? (s.embeddings.get(stem(paths[k])) ?? s.embeddings.get('default'))
        : undefined;
      if (s.embeddings && !conditioning)
        throw new ConfigError(
          `--embeddings has no entry for ${stem(paths[k])} and no "default" (it has: ${[...s.embeddings.keys()].slice(0, 5).join(', ')}...)`,
        );
      stages.push(
        await sdDinoStages(sd, image, {
          timestep: s.timestep,
          seed: s.seed,
          prompt: s.prompt.replaceAll('{category}', f.pair.category),
          conditioning,
        }),
      );
    }
    return sdDinoSdDescriptors(stages[0], stages[1], s.pcaDims);
  });
}
