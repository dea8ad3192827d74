/**
 * The hyperfeature extractor: real images through VAE + DDIM inversion, prompts through
 * generation, each giving one FeatureStack per image. Images of a batch share UNet calls;
 * results are cached on disk keyed by (model, input content, settings).
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import { checkPositiveInt } from '../core/validate.ts';
import { Rng } from '../core/rng.ts';
import { Tensor, concat } from '../core/tensor.ts';
import { loadImage, pixelsToRgb, type ImageInput, type RgbImage } from '../data/image.ts';
import { tapCount } from '../model/unet/index.ts';
import { FeatureStack, type FeatureMeta } from './feature-stack.ts';
import { runDiffusion, type DiffusionMode } from './loop.ts';
import { PAPER_SAVE_TIMESTEPS, validatePlan, type CapturePlan } from './plan.ts';
import type { StableDiffusion } from './pipeline.ts';
import { FeatureCache } from './cache.ts';

export interface ExtractOptions {
  /** DDIM steps (50 in the paper; 1 for the one-step variant). */
  steps?: number;
  /** Generation numbering; default the paper's [49, 45, ..., 0] (or [0] for 1 step). */
  saveTimesteps?: number[];
  /** 1-based decoder layers; default all. */
  layers?: number[];
  /** PIL-bilinear load size (the paper evaluated at 224), then interpolated to `imageSize`. */
  loadSize?: number;
  /** Pixels fed to the VAE (512 for SD). */
  imageSize?: number;
  /** VAE posterior: its mean (default, deterministic) or a seeded sample. */
  posterior?: 'mean' | { seed: number };
  /** Prompt for the inversion condition (the paper: ""). */
  prompt?: string;
  /**
   * Apply embedded ICC profiles when decoding (display-correct colours). Off by default: the
   * paper's pipeline reads images with Pillow's convert("RGB"), without colour management.
   */
  colorManaged?: boolean;
  /** Images per UNet batch (default 2: a pair). */
  batchSize?: number;
  /** Feature cache folder; `false` disables the cache. */
  cache?: string | false;
  onProgress?: (done: number, total: number) => void;
}

export interface GenerateOptions extends Omit<ExtractOptions, 'loadSize' | 'posterior' | 'prompt'> {
  negativePrompt?: string;
  /** Classifier-free guidance scale; omit for none. */
  guidanceScale?: number;
  /** Seed of the initial noise (one per prompt: seed + index). */
  seed?: number;
  /** Image size in pixels (512 -> 64x64 latents); default: the UNet's sample_size x 8, as diffusers (SD-1.5 512, SD-2 768). */
  size?: number;
}

/** The paper's extraction settings; outputResolution is the side of the saved / aggregated maps. */
export const DEFAULT_EXTRACT = {
  steps: 50,
  loadSize: 224,
  imageSize: 512,
  batchSize: 2,
  outputResolution: 64,
} as const;
/** Largest load / image size accepted (a 4096^2 image is already 12x SD's 512^2 latent area squared in attention). */
export const MAX_IMAGE_SIDE = 4096;

/**
 * The load size and the model's image size of an extraction, checked: positive integers up to
 * MAX_IMAGE_SIDE, the image size a multiple of 8 (the VAE downsamples by 8).
 * @throws ConfigError naming the option.
 */
export function imageSizes(o: { loadSize?: number; imageSize?: number }): {
  loadSize: number;
  imageSize: number;
} {
  for (const k of ['loadSize', 'imageSize'] as const) checkPositiveInt(k, o[k]);
  const loadSize = o.loadSize ?? DEFAULT_EXTRACT.loadSize;
  const imageSize = o.imageSize ?? DEFAULT_EXTRACT.imageSize;
  if (imageSize % 8)
    throw new ConfigError(
      messages.invalidOption('imageSize', 'a multiple of 8 (the VAE downsamples by 8)', imageSize),
    );
  for (const [k, v] of [
    ['loadSize', loadSize],
    ['imageSize', imageSize],
  ] as const)
    if (v > MAX_IMAGE_SIDE)
      throw new ConfigError(
        messages.invalidOption(
          k,
          `at most ${MAX_IMAGE_SIDE} pixels (the image is resized to ${k} x ${k})`,
          v,
        ),
      );
  return { loadSize, imageSize };
}

function resolvePlan(
  sd: StableDiffusion,
  o: { steps?: number; saveTimesteps?: number[]; layers?: number[] },
) {
  const steps = o.steps ?? DEFAULT_EXTRACT.steps;
  const L = tapCount(sd.unet.config);
  const saveTimesteps =
    o.saveTimesteps ?? (steps === 50 ? [...PAPER_SAVE_TIMESTEPS] : steps === 1 ? [0] : [steps - 1, 0]);
  const layers = o.layers ?? Array.from({ length: L }, (_, i) => i + 1);
  return { steps, plan: validatePlan({ saveTimesteps, layers }, steps, L) };
}

/** The FeatureStack of batch item `b` from a run's captures [s][l] ([B, C, h, w] each). */
function imageStack(captures: Tensor[][], plan: CapturePlan, b: number, meta: FeatureMeta): FeatureStack {
  return new FeatureStack(
    plan.saveTimesteps,
    plan.layers,
    captures.map((row) => row.map((t) => t.sliceFirst(b))),
    meta,
  );
}

const batches = <T>(xs: T[], n: number): T[][] =>
  Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, (i + 1) * n));

function rgbHash(img: RgbImage): string {
  return createHash('sha256').update(`${img.width}x${img.height}:`).update(img.data).digest('hex');
}

/**
 * Invert real images and capture their decoder features (DESIGN.md semantics 2, 4, 5).
 * @example const [a, b] = await invertImages(sd, ['cat1.jpg', 'cat2.jpg']);
 * @throws ConfigError for bad settings, DataError for unreadable images.
 */
export async function invertImages(
  sd: StableDiffusion,
  images: ImageInput[],
  o: ExtractOptions = {},
): Promise<FeatureStack[]> {
  const { steps, plan } = resolvePlan(sd, o);
  checkPositiveInt('batchSize', o.batchSize);
  const { loadSize, imageSize } = imageSizes(o);
  const posterior = o.posterior ?? 'mean';
  if (
    posterior !== 'mean' &&
    !(typeof posterior === 'object' && posterior !== null && Number.isInteger(posterior.seed))
  )
    throw new ConfigError(
      messages.invalidOption('posterior', '"mean" or { seed: <integer> } (a seeded sample)', posterior),
    );
  const prompt = o.prompt ?? '';
  if (typeof prompt !== 'string') throw new ConfigError(messages.invalidOption('prompt', 'a string', prompt));
  if (!Array.isArray(images) || !images.length)
    throw new ConfigError(
      `invertImages: expected a non-empty list of images, got ${Array.isArray(images) ? 'an empty list' : typeof images}`,
    );
  const settings = { kind: 'inversion', steps, plan, loadSize, imageSize, posterior, prompt };
  const cache = o.cache === false ? undefined : new FeatureCache(o.cache);
  const loaded = await Promise.all(
    images.map((img) => loadImage(img, { loadSize, modelSize: imageSize, colorManaged: o.colorManaged })),
  );
  const keys = loaded.map((l) => FeatureCache.key(sd.modelHash, rgbHash(pixelsToRgb(l.pixels)), settings));
  const out: (FeatureStack | undefined)[] = await Promise.all(keys.map((k) => cache?.get(k)));
  const todo = out.flatMap((s, i) => (s ? [] : [i]));
  const cond = await sd.textEncoder.encode(prompt);
  const total = todo.length * steps;
  let done = 0;
  for (const group of batches(todo, o.batchSize ?? DEFAULT_EXTRACT.batchSize)) {
    const pixels = concat(
      group.map((i) => loaded[i].pixels),
      0,
    );
    const post = await sd.vae.encode(pixels);
    const latent = sd.vae.latentFromPosterior(post, posterior === 'mean' ? 'mean' : { seed: posterior.seed });
    const r = await runDiffusion(sd.unet, latent, {
      mode: 'inversion',
      steps,
      plan,
      cond,
      onStep: () => o.onProgress?.((done += group.length), total), // image-steps, across batches
      trajectory: false, // features only: on a GPU the loop stays on the device
    });
    for (const [b, i] of group.entries()) {
      const meta = {
        model: sd.modelId,
        mode: 'inversion' as DiffusionMode,
        steps,
        imageSize,
        seed: posterior === 'mean' ? null : posterior.seed,
        originalSize: loaded[i].originalSize,
        prompt,
      };
      const stack = imageStack(r.captures, plan, b, meta);
      out[i] = stack;
      await cache?.put(keys[i], stack);
    }
  }
  return out as FeatureStack[];
}

/** Invert given latents [B, 4, h, w] with a given condition [1 or B, S, D] (exact-input path). */
export async function invertLatents(
  sd: StableDiffusion,
  latents: Tensor,
  cond: Tensor,
  o: ExtractOptions = {},
): Promise<FeatureStack[]> {
  const { steps, plan } = resolvePlan(sd, o);
  latents.expectShape('latent', [-1, sd.unet.config.inChannels, -1, -1]);
  const r = await runDiffusion(sd.unet, latents, {
    mode: 'inversion',
    steps,
    plan,
    cond,
    onStep: o.onProgress,
    trajectory: false, // features only: on a GPU the loop stays on the device
  });
  const meta = {
    model: sd.modelId,
    mode: 'inversion' as DiffusionMode,
    steps,
    imageSize: latents.shape[2] * 8,
    seed: null,
  };
  return Array.from({ length: latents.shape[0] }, (_, b) => imageStack(r.captures, plan, b, meta));
}

/**
 * Generation from exactly given inputs, as the original synthetic demo saves its noise: `noise`
 * [B, 4, h, w] is x_T, `cond` [1 or B, S, D] the prompt embedding, and with `guidance` its
 * negative-prompt embedding and scale (classifier-free guidance, taps of the conditional half).
 * Returns the feature stacks (generation numbering), the x0 trajectory, the final latent and
 * the decoded images.
 */
export async function generateLatents(
  sd: StableDiffusion,
  noise: Tensor,
  cond: Tensor,
  o: Omit<GenerateOptions, 'seed' | 'size' | 'negativePrompt' | 'guidanceScale'> & {
    guidance?: { scale: number; uncond: Tensor };
  } = {},
): Promise<{ stacks: FeatureStack[]; images: Tensor[]; x0Preds: Tensor[]; finalLatent: Tensor }> {
  const { steps, plan } = resolvePlan(sd, o);
  noise.expectShape('noise (latent)', [-1, sd.unet.config.inChannels, -1, -1]);
  if (o.guidance && !(Number.isFinite(o.guidance.scale) && o.guidance.scale >= 0))
    throw new ConfigError(messages.invalidOption('guidance scale', 'a finite number >= 0', o.guidance.scale));
  const r = await runDiffusion(sd.unet, noise, {
    mode: 'generation',
    steps,
    plan,
    cond,
    guidance: o.guidance,
    onStep: o.onProgress,
  });
  const decoded = await sd.vae.decodeLatents(r.finalLatent);
  const meta = {
    model: sd.modelId,
    mode: 'generation' as DiffusionMode,
    steps,
    imageSize: noise.shape[2] * 8,
    seed: null,
  };
  return {
    stacks: Array.from({ length: noise.shape[0] }, (_, b) => imageStack(r.captures, plan, b, meta)),
    images: Array.from({ length: noise.shape[0] }, (_, b) => decoded.sliceFirst(b)),
    x0Preds: r.x0Preds,
    finalLatent: r.finalLatent,
  };
}

/**
 * Generate images from prompts and capture generation features (save timestep i at step i;
 * use `.flipped()` before an inversion-trained aggregation network).
 */
export async function generateImages(
  sd: StableDiffusion,
  prompts: string[],
  o: GenerateOptions = {},
): Promise<{ stacks: FeatureStack[]; images: Tensor[] }> {
  const { steps, plan } = resolvePlan(sd, o);
  checkPositiveInt('size', o.size);
  const size = o.size ?? sd.unet.config.sampleSize * 8;
  if (size % 8) throw new ConfigError(messages.invalidOption('size', 'a multiple of 8', size));
  if (!prompts.length)
    throw new ConfigError(messages.invalidOption('prompts', 'at least one prompt', prompts));
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0)
    throw new ConfigError(messages.invalidOption('seed', 'a non-negative integer', seed));
  if (o.guidanceScale !== undefined && !(Number.isFinite(o.guidanceScale) && o.guidanceScale >= 0))
    throw new ConfigError(messages.invalidOption('guidanceScale', 'a number >= 0', o.guidanceScale));
  const h = size / 8;
  const c = sd.unet.config.inChannels;
  const stacks: FeatureStack[] = [];
  const images: Tensor[] = [];
  let done = 0;
  const bs = o.batchSize ?? DEFAULT_EXTRACT.batchSize;
  for (const [g, group] of batches(prompts, bs).entries()) {
    const noise = concat(
      group.map((_, k) => new Tensor(new Rng(seed + g * bs + k).normalArray(c * h * h), [1, c, h, h])),
      0,
    );
    const cond = await sd.textEncoder.encode(group);
    const guidance =
      o.guidanceScale !== undefined
        ? { scale: o.guidanceScale, uncond: await sd.textEncoder.encode(o.negativePrompt ?? '') }
        : undefined;
    const r = await runDiffusion(sd.unet, noise, {
      mode: 'generation',
      steps,
      plan,
      cond,
      guidance,
      onStep: () => o.onProgress?.((done += group.length), prompts.length * steps),
      trajectory: false,
    });
    const decoded = await sd.vae.decodeLatents(r.finalLatent);
    group.forEach((prompt, b) => {
      const meta = {
        model: sd.modelId,
        mode: 'generation' as DiffusionMode,
        steps,
        imageSize: size,
        seed: seed + g * bs + b,
        prompt,
      };
      stacks.push(imageStack(r.captures, plan, b, meta));
      images.push(decoded.sliceFirst(b));
    });
  }
  return { stacks, images };
}
