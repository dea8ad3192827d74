/**
 * SD-DINO (Zhang et al., "A Tale of Two Features", NeurIPS 2023; Junyi42/sd-dino,
 * pck_spair_pascal.py) as functions: its letterboxed inputs, its SD descriptor (ODISE's decoder
 * features of output_blocks 2, 5, 8 at t = 100, co-PCA to 256 each, upsampled and
 * concatenated), its fusion with DINOv2 tokens (each part L2-normalised, concatenated, L2 nearest
 * neighbour) and its grid matching (keypoint -> patch, nearest patch, patch centre).
 *
 * The fusion weight `dinoWeight` = w scales the normalised DINOv2 part by w and the SD part by
 * 1 - w, so the L2 nearest neighbour maximises (1 - w)^2 cos_sd + w^2 cos_dino: w = 0.5 is the
 * original's equal weights, w = 1 the DINOv2 row, w = 0 SD alone.
 */
import { ConfigError } from '../core/errors.ts';
import { messages } from '../core/messages.ts';
import type { RgbImage } from '../core/rgb.ts';
import { Tensor, concat, resizeBilinear } from '../core/tensor.ts';
import { pilResize } from '../data/pil-resize.ts';
import { readAllSafetensors } from '../core/safetensors.ts';
import { decodeImage, type ImageInput } from '../data/image.ts';
import { noisedFeatures } from '../diffusion/noised.ts';
import type { StableDiffusion } from '../diffusion/pipeline.ts';
import { dinoPixels } from '../model/dino/index.ts';
import type { Dinov2Model } from '../model/dinov2/index.ts';
import { coPca } from './co-pca.ts';
import { batchedArgmax } from './similarity.ts';

export const SD_DINO_DEFAULTS = {
  /** SD input (960: latent 120, features 15/30/60). */
  sdSize: 960,
  /** DINOv2 input (840: a 60 x 60 grid of 14 px patches). */
  dinoSize: 840,
  timestep: 100,
  /** LDM output_blocks whose inputs are SD-DINO's s5, s4, s3. */
  decoderInputs: [2, 5, 8],
  pcaDims: [256, 256, 256],
  dinoWeight: 0.5,
  /** SD-DINO's TEXT_INPUT prompt (its default, ODISE's implicit captioner, needs ODISE's weights). */
  prompt: 'a photo of {category}',
  seed: 0,
} as const;

export type PointXY = [number, number];

/** Where an image sits on SD-DINO's square canvas (preprocess_kps_pad's numbers). */
export interface Letterbox {
  size: number;
  /** Points: canvas = original * scale + offset. */
  scale: number;
  offsetX: number;
  offsetY: number;
  /** The resized image's size on the canvas. */
  width: number;
  height: number;
}

/** numpy's around: halves to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function letterbox(width: number, height: number, size: number): Letterbox {
  const scale = size / Math.max(width, height);
  if (height <= width) {
    const h = roundHalfEven((size * height) / width);
    return { size, scale, offsetX: 0, offsetY: Math.floor((size - h) / 2), width: size, height: h };
  }
  const w = roundHalfEven((size * width) / height);
  return { size, scale, offsetX: Math.floor((size - w) / 2), offsetY: 0, width: w, height: size };
}

/** The image resized with PIL's LANCZOS onto a zero (black) square canvas, centred. */
export function letterboxImage(img: RgbImage, size: number): { image: RgbImage; box: Letterbox } {
  const box = letterbox(img.width, img.height, size);
  const resized = pilResize(img.data, img.width, img.height, 3, box.width, box.height, 'lanczos');
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < box.height; y++)
    data.set(
      resized.subarray(y * box.width * 3, (y + 1) * box.width * 3),
      ((y + box.offsetY) * size + box.offsetX) * 3,
    );
  return { image: { data, width: size, height: size }, box };
}

export const toCanvas = (p: readonly PointXY[], b: Letterbox): PointXY[] =>
  p.map(([x, y]) => [x * b.scale + b.offsetX, y * b.scale + b.offsetY]);
export const fromCanvas = (p: readonly PointXY[], b: Letterbox): PointXY[] =>
  p.map(([x, y]) => [(x - b.offsetX) / b.scale, (y - b.offsetY) / b.scale]);

/**
 * SD-DINO's SD descriptors of a pair from the stages [s5, s4, s3] of each image: co-PCA of
 * each stage to `dims`, s5 bilinearly to s4's size and concatenated after s4, that to s3's size
 * and concatenated after s3 (co_pca's order and its two-step upsampling of s5).
 */
export async function sdDinoSdDescriptors(
  a: readonly Tensor[],
  b: readonly Tensor[],
  dims: readonly number[] = SD_DINO_DEFAULTS.pcaDims,
): Promise<[Tensor, Tensor]> {
  if (a.length !== 3 || b.length !== 3 || dims.length !== 3)
    throw new ConfigError(
      'SD-DINO SD features: expected three stages (s5, s4, s3) per image and three PCA sizes',
    );
  const [s5a, s5b] = await coPca(a[0], b[0], dims[0]);
  const [s4a, s4b] = await coPca(a[1], b[1], dims[1]);
  const [s3a, s3b] = await coPca(a[2], b[2], dims[2]);
  const join = (s3: Tensor, s4: Tensor, s5: Tensor) => {
    const s45 = concat([s4, resizeBilinear(s5, s4.shape[2], s4.shape[3])], 1);
    return concat([s3, resizeBilinear(s45, s3.shape[2], s3.shape[3])], 1);
  };
  return [join(s3a, s4a, s5a), join(s3b, s4b, s5b)];
}

/** Each pixel's vector of an NCHW map scaled to length `weight` (0 vectors stay 0), as a map. */
export function weightedUnitPixels(t: Tensor, weight = 1): Tensor {
  const [, c, h, w] = t.shape;
  const n = h * w;
  const out = new Float32Array(t.size);
  for (let p = 0; p < n; p++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s += t.data[ch * n + p] ** 2;
    const k = s > 0 ? weight / Math.sqrt(s) : 0;
    for (let ch = 0; ch < c; ch++) out[ch * n + p] = t.data[ch * n + p] * k;
  }
  return new Tensor(out, t.shape);
}

/** Check a fusion weight. @throws ConfigError */
export function checkDinoWeight(w: unknown): number {
  if (typeof w !== 'number' || !(w >= 0 && w <= 1))
    throw new ConfigError(
      messages.invalidOption(
        'dinoWeight',
        'a fusion weight in [0, 1] (0: SD alone, 0.5: SD-DINO, 1: DINOv2 alone)',
        w,
      ),
    );
  return w;
}

/**
 * Fused descriptors of one image: its SD and DINOv2 maps (same grid) normalised per pixel and
 * weighted (1 - w, w), as one map whose dot products are the fused score.
 */
export function fuse(sd: Tensor | undefined, dino: Tensor | undefined, dinoWeight: number): Tensor {
  const w = checkDinoWeight(dinoWeight);
  const parts: Tensor[] = [];
  if (sd && w < 1) parts.push(weightedUnitPixels(sd, 1 - w));
  if (dino && w > 0) parts.push(weightedUnitPixels(dino, w));
  if (!parts.length) throw new ConfigError('SD-DINO fusion: no feature left at this weight');
  return parts.length === 1 ? parts[0] : concat(parts, 1);
}

/**
 * SD-DINO's matching on the patch grid: each source point (canvas pixels) to its patch
 * (int(grid / size * coordinate)), the target patch with the largest dot product, returned as
 * that patch's centre (patch p -> p * cell + floor(patch / 2) - 0.5, cell = size / grid).
 */
export async function gridMatch(
  source: Tensor,
  target: Tensor,
  points: readonly PointXY[],
  o: { size: number; patch: number },
): Promise<PointXY[]> {
  const [, d, gh, gw] = source.shape;
  target.expectShape('target descriptors', [1, d, gh, gw]);
  if (gh !== gw) throw new ConfigError(`grid matching expects a square grid, got ${gh}x${gw}`);
  const g = gh;
  const n = g * g;
  const cell = o.size / g;
  const row = (p: PointXY) => {
    const [px, py] = [Math.trunc((g / o.size) * p[0]), Math.trunc((g / o.size) * p[1])];
    return Math.min(Math.max(py, 0), g - 1) * g + Math.min(Math.max(px, 0), g - 1);
  };
  const pixelMajor = (t: Tensor) => {
    const out = new Float32Array(n * d);
    for (let p = 0; p < n; p++) for (let c = 0; c < d; c++) out[p * d + c] = t.data[c * n + p];
    return out;
  };
  const src = pixelMajor(source);
  const queries = new Float32Array(points.length * d);
  points.forEach((p, k) => queries.set(src.subarray(row(p) * d, (row(p) + 1) * d), k * d));
  const { best } = await batchedArgmax(queries, pixelMajor(target), d);
  const centre = (i: number) => i * cell + Math.floor(o.patch / 2) - 0.5;
  return best.map((j) => [centre(j % g), centre(Math.floor(j / g))]);
}

/**
 * Given text conditioning for `--embeddings`: a safetensors file of [1, S, D] (or [S, D])
 * tensors named by image file stem, "default" for every other image (e.g. ODISE's implicit
 * captions, exported).
 * @throws DataError for an unreadable file
 */
export async function readEmbeddings(path: string): Promise<Map<string, Tensor>> {
  const { tensors } = await readAllSafetensors(path);
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    if (t.shape.length !== 2 && !(t.shape.length === 3 && t.shape[0] === 1))
      throw new ConfigError(
        `${path}: embedding "${name}" has shape [${t.shape}]; expected [1, S, D] or [S, D]`,
      );
    out.set(name, t.shape.length === 2 ? new Tensor(t.data, [1, ...t.shape]) : t);
  }
  if (!out.size) throw new ConfigError(`${path}: no embeddings in the file`);
  return out;
}

/**
 * SD-DINO's three SD stages [s5, s4, s3] of one square image: the inputs of decoder resnets
 * 2, 5, 8 (ODISE's output_blocks hook) of one UNet call at `timestep` on the clean latent
 * noised with one seeded noise, conditioned on `prompt` or given `conditioning`.
 */
export async function sdDinoStages(
  sd: StableDiffusion,
  image: RgbImage,
  o: { timestep: number; seed: number; prompt: string; conditioning?: Tensor },
): Promise<Tensor[]> {
  const [out] = await noisedFeatures(sd, [image], {
    timestep: o.timestep,
    ensemble: 1,
    seed: o.seed,
    prompt: o.prompt,
    conditioning: o.conditioning,
    loadSize: image.width,
    imageSize: image.width,
    layers: [],
    decoderInputs: [...SD_DINO_DEFAULTS.decoderInputs],
  });
  return out.decoderInputs;
}

export interface SdDinoDescriptorOptions {
  sdSize?: number;
  dinoSize?: number;
  timestep?: number;
  pcaDims?: number[];
  dinoWeight?: number;
  /** The text conditioning's prompt (default "a photo of {category}" with `category`). */
  prompt?: string;
  category?: string;
  seed?: number;
  /**
   * `letterbox`: SD-DINO's square canvases (padding included in the maps); `stretch`: each
   * image resized to the square, so the maps cover exactly the image (what overlays want).
   */
  frame?: 'letterbox' | 'stretch';
}

/**
 * SD-DINO's fused descriptor maps of two images (their SD parts co-PCA'd together), on
 * DINOv2's patch grid: dot products of the maps are the fused score.
 */
export async function sdDinoDescriptors(
  sd: StableDiffusion,
  dinov2: Dinov2Model,
  images: [ImageInput, ImageInput],
  o: SdDinoDescriptorOptions = {},
): Promise<[Tensor, Tensor]> {
  const s = {
    ...SD_DINO_DEFAULTS,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
  };
  const w = checkDinoWeight(s.dinoWeight);
  const rgb = await Promise.all(images.map((i) => decodeImage(i)));
  const square = (img: RgbImage, size: number): RgbImage =>
    o.frame === 'stretch'
      ? {
          data: pilResize(img.data, img.width, img.height, 3, size, size, 'lanczos'),
          width: size,
          height: size,
        }
      : letterboxImage(img, size).image;
  const dino = [];
  for (const img of rgb) dino.push(await dinov2.describePixels(dinoPixels(square(img, s.dinoSize))));
  if (w === 1) return [fuse(undefined, dino[0], 1), fuse(undefined, dino[1], 1)];
  const stages: Tensor[][] = [];
  for (const img of rgb)
    stages.push(
      await sdDinoStages(sd, square(img, s.sdSize), {
        timestep: s.timestep,
        seed: s.seed,
        prompt: s.prompt.replaceAll('{category}', o.category ?? 'object'),
      }),
    );
  const sdMaps = await sdDinoSdDescriptors(stages[0], stages[1], s.pcaDims);
  const [, , gh, gw] = dino[0].shape;
  const onGrid = (t: Tensor) => (t.shape[2] !== gh || t.shape[3] !== gw ? resizeBilinear(t, gh, gw) : t);
  return [fuse(onGrid(sdMaps[0]), dino[0], w), fuse(onGrid(sdMaps[1]), dino[1], w)];
}
