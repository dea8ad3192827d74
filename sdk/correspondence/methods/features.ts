/** Features several methods share, memoised per pair by PairFeatures. */
import type { Tensor } from '../../core/tensor.ts';
import { invertImages } from '../../diffusion/extract.ts';
import { FeatureStack } from '../../diffusion/feature-stack.ts';
import { noisedFeatures } from '../../diffusion/noised.ts';
import { tapCount } from '../../model/unet/config.ts';
import type { PairFeatures } from './method.ts';
import { diftSettings } from './dift-settings.ts';

export const MULTI = 'multi';
export const CLEAN = 'clean';

const images = (f: PairFeatures) => [f.pair.source, f.pair.target];

/** The multi-timestep inversion of both images (the network's settings). */
export function multiInversion(f: PairFeatures): Promise<FeatureStack[]> {
  const { sd, multiExtract, loadSize } = f.run;
  return f.get(MULTI, () => invertImages(sd, images(f), { ...multiExtract, loadSize }));
}

/** The stack of the clean map with one-step labels (save timestep 0 of 1 step). */
function asOneStep(s: FeatureStack): FeatureStack {
  const label = Math.max(...s.saveTimesteps);
  const one = s.select([label], s.layers);
  return new FeatureStack([0], one.layers, one.maps as Tensor[][], { ...s.meta, steps: 1 });
}

/**
 * Every layer at the first inversion step (one UNet call on the clean latent at t = -1). The
 * 50-step inversion's first step IS that call: reused when this run inverts and captured it whole.
 */
export function cleanStep(f: PairFeatures): Promise<FeatureStack[]> {
  const { sd, o, multiExtract, loadSize, uses } = f.run;
  return f.get(CLEAN, async () => {
    const steps = multiExtract.steps ?? 50;
    const multi = uses.has(MULTI) ? await multiInversion(f) : [];
    const whole =
      multi.length &&
      multi[0].saveTimesteps.includes(steps - 1) &&
      multi[0].layers.length === tapCount(sd.unet.config);
    if (whole) return multi.map((s) => asOneStep(s.select([steps - 1], s.layers)));
    return invertImages(sd, images(f), {
      ...o.extract,
      steps: 1,
      saveTimesteps: [0],
      layers: undefined,
      loadSize,
    });
  });
}

/** DIFT-style up-block features of both images (the prompt names the pair's category). */
export function diftFeatures(f: PairFeatures): Promise<Tensor[]> {
  const { sd, o, loadSize } = f.run;
  return f.get('dift', async () => {
    const d = diftSettings(o.dift);
    const out = await noisedFeatures(sd, images(f), {
      ...d,
      prompt: d.prompt.replaceAll('{category}', f.pair.category),
      loadSize,
      imageSize: o.extract?.imageSize,
      posterior: o.extract?.posterior,
      colorManaged: o.extract?.colorManaged,
      layers: [],
    });
    return out.map((x) => x.upBlock);
  });
}

/** How the one-step rows describe the clean call. */
export const CLEAN_CALL =
  'the first inversion step: one UNet call on the clean latent at t = -1 (save timestep 49 of a 50-step inversion, identical to the one-step variant)';
