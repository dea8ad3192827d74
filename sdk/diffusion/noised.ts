/**
 * Features of a noised real image, the third extraction mode beside inversion and generation
 * (DIFT, Tang et al. 2023; the left side of the DHF paper's Figure 3): the clean latent x0 is
 * noised in one jump, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps (q(x_t | x0), DDPM's add_noise),
 * and ONE UNet call at t gives the decoder taps and the up-block outputs. With an ensemble
 * the call is repeated over independent noises and the features are averaged (DIFT: t = 261,
 * 8 noises, the output of up-block 1).
 */
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { checkPositiveInt } from '../core/validate.ts';
import { Rng } from '../core/rng.ts';
import { Tensor, concat } from '../core/tensor.ts';
import { loadImage, type ImageInput } from '../data/image.ts';
import { tapCount } from '../model/unet/index.ts';
import { FeatureStack } from './feature-stack.ts';
import { DdimScheduler } from './scheduler.ts';
import { DEFAULT_EXTRACT, imageSizes, type ExtractOptions } from './extract.ts';
import type { StableDiffusion } from './pipeline.ts';

/** DIFT's settings for semantic correspondence with SD. */
export const DIFT_DEFAULTS = { timestep: 261, ensemble: 8, upBlock: 1, seed: 0 } as const;

export interface NoisedOptions extends Pick<
  ExtractOptions,
  'layers' | 'loadSize' | 'imageSize' | 'posterior' | 'prompt' | 'colorManaged' | 'batchSize' | 'onProgress'
> {
  /** Diffusion timestep of the noise (0..num_train_timesteps-1); default 261. */
  timestep?: number;
  /** Noises averaged over (default 8). */
  ensemble?: number;
  /** Seed of the noises; every image gets the same noises (features depend on the image only). */
  seed?: number;
  /** Up-block whose whole output is returned (0-based; default 1, DIFT's up_ft_index). */
  upBlock?: number;
  /** Decoder resnet inputs also returned (LDM output_blocks numbering, UNetInput.decoderInputs). */
  decoderInputs?: number[];
  /** Text conditioning [1, S, D] to use instead of encoding `prompt` (given embeddings). */
  conditioning?: Tensor;
}

export interface NoisedFeatures {
  /** The decoder taps at this one timestep, averaged over the ensemble (save timestep label = t). */
  stack: FeatureStack;
  /** The up-block output [1, C, h, w], averaged over the ensemble: DIFT's descriptor. */
  upBlock: Tensor;
  /** The decoder resnet inputs asked for, averaged over the ensemble (SD-DINO's SD features). */
  decoderInputs: Tensor[];
}

/** q(x_t | x0) with a given noise: sqrt(a) x0 + sqrt(1 - a) eps, for alpha-bar `a`. */
export function addNoise(latent: Tensor, noise: Tensor, alphaBar: number): Tensor {
  if (latent.size !== noise.size)
    throw new ConfigError(`addNoise: latent has ${latent.size} values, noise ${noise.size}`);
  const [s, n] = [Math.sqrt(alphaBar), Math.sqrt(1 - alphaBar)];
  return latent.map((v, i) => s * v + n * noise.data[i]);
}

/** The ensemble's noises [E, C, h, w] for a latent shape, from one seed (standard normal). */
export function ensembleNoise(seed: number, ensemble: number, shape: readonly number[]): Tensor {
  const [, c, h, w] = shape;
  return new Tensor(new Rng(seed).normalArray(ensemble * c * h * w), [ensemble, c, h, w]);
}

function meanOverBatch(xs: Tensor[]): Tensor {
  const total = xs.reduce((n, x) => n + x.shape[0], 0);
  const [, ...rest] = xs[0].shape;
  const per = xs[0].size / xs[0].shape[0];
  const out = new Float32Array(per);
  for (const x of xs) for (let i = 0; i < x.data.length; i++) out[i % per] += x.data[i];
  for (let i = 0; i < per; i++) out[i] /= total;
  return new Tensor(out, [1, ...rest]);
}

function checkOptions(sd: StableDiffusion, o: NoisedOptions) {
  const timestep = o.timestep ?? DIFT_DEFAULTS.timestep;
  const trainSteps = new DdimScheduler().alphasCumprod.length;
  if (!Number.isInteger(timestep) || timestep < 0 || timestep >= trainSteps)
    throw new ConfigError(
      messages.invalidOption('timestep', `an integer diffusion timestep in 0..${trainSteps - 1}`, timestep),
    );
  for (const k of ['ensemble', 'batchSize'] as const) checkPositiveInt(k, o[k]);
  const { loadSize, imageSize } = imageSizes(o);
  const blocks = sd.unet.config.upBlockTypes.length;
  const upBlock = o.upBlock ?? DIFT_DEFAULTS.upBlock;
  if (!Number.isInteger(upBlock) || upBlock < 0 || upBlock >= blocks)
    throw new ConfigError(
      messages.invalidOption('upBlock', `an up-block index in 0..${blocks - 1}`, upBlock),
    );
  const seed = o.seed ?? DIFT_DEFAULTS.seed;
  if (!Number.isInteger(seed)) throw new ConfigError(messages.invalidOption('seed', 'an integer', seed));
  const L = tapCount(sd.unet.config);
  const layers = o.layers ?? Array.from({ length: L }, (_, i) => i + 1);
  const badLayers = layers.filter((l) => !Number.isInteger(l) || l < 1 || l > L);
  if (badLayers.length)
    throw new ConfigError(messages.invalidOption('layers', `1-based layers in 1..${L}`, badLayers));
  return {
    timestep,
    ensemble: o.ensemble ?? DIFT_DEFAULTS.ensemble,
    upBlock,
    seed,
    imageSize,
    loadSize,
    layers,
    batch: o.batchSize ?? DEFAULT_EXTRACT.batchSize,
  };
}

/**
 * Noise each clean latent to timestep t and capture one UNet call's features (averaged over
 * the ensemble). Images are loaded as for inversion (load size, then the model size).
 * @throws ConfigError for bad settings, DataError for unreadable images.
 */
export async function noisedFeatures(
  sd: StableDiffusion,
  images: ImageInput[],
  o: NoisedOptions = {},
): Promise<NoisedFeatures[]> {
  const s = checkOptions(sd, o);
  if (!Array.isArray(images) || !images.length)
    throw new ConfigError('noisedFeatures: expected a non-empty list of images');
  const prompt = o.prompt ?? '';
  const posterior = o.posterior ?? 'mean';
  const alphaBar = new DdimScheduler().alphasCumprod[s.timestep];
  const cond = o.conditioning ?? (await sd.textEncoder.encode(prompt));
  const out: NoisedFeatures[] = [];
  let done = 0;
  for (const image of images) {
    const loaded = await loadImage(image, {
      loadSize: s.loadSize,
      modelSize: s.imageSize,
      colorManaged: o.colorManaged,
    });
    const post = await sd.vae.encode(loaded.pixels);
    const x0 = sd.vae.latentFromPosterior(post, posterior);
    const noise = ensembleNoise(s.seed, s.ensemble, x0.shape);
    const taps: Tensor[][] = s.layers.map(() => []);
    const blocks: Tensor[] = [];
    const inputs: Tensor[][] = (o.decoderInputs ?? []).map(() => []);
    for (let e = 0; e < s.ensemble; e += s.batch) {
      const n = Math.min(s.batch, s.ensemble - e);
      const xt = concat(
        Array.from({ length: n }, (_, k) => addNoise(x0, noise.sliceFirst(e + k), alphaBar)),
        0,
      );
      const r = await sd.unet.run({
        sample: xt,
        timestep: s.timestep,
        encoderHiddenStates: concat(Array(n).fill(cond), 0),
        tapLayers: s.layers,
        upBlocks: [s.upBlock],
        decoderInputs: o.decoderInputs,
      });
      r.decoderInputs.forEach((t, k) => inputs[k].push(t));
      r.taps.forEach((t, l) => taps[l].push(t));
      blocks.push(r.upBlocks[0]);
      o.onProgress?.((done += n), images.length * s.ensemble);
    }
    const stack = new FeatureStack([s.timestep], s.layers, [taps.map(meanOverBatch)], {
      model: sd.modelId,
      mode: 'noised',
      steps: 1,
      imageSize: s.imageSize,
      seed: s.seed,
      originalSize: loaded.originalSize,
      prompt,
      timestep: s.timestep,
      ensemble: s.ensemble,
    });
    out.push({ stack, upBlock: meanOverBatch(blocks), decoderInputs: inputs.map(meanOverBatch) });
  }
  return out;
}
