/**
 * DINO (Caron et al. 2021) self-supervised ViT as a dense descriptor, the DINO row of the
 * paper's Table 1: hub checkpoints in transformers format (`facebook/dino-vits8`,
 * `facebook/dino-vitb8`: config.json + model.safetensors, or pytorch_model.bin read with the
 * restricted unpickler), built as an ONNX graph by our own builder. Descriptors follow the
 * dense-ViT-descriptor recipe of Amir et al. (2021, "Deep ViT Features as Dense Visual
 * Descriptors"): one facet (key by default) of one block (index 9, 0-based), CLS dropped,
 * heads concatenated, overlapping patches (stride 4); their log-binning is not applied.
 */
import { ConfigError, ModelError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { SafetensorsReader } from '../../core/safetensors.ts';
import { Tensor } from '../../core/tensor.ts';
import { decodeImage, resizeRgb, type ImageInput } from '../../data/image.ts';
import { readJson } from '../config.ts';
import { cachedSession } from '../cache.ts';
import type { HubOptions } from '../hub.ts';
import { Session, type SessionOptions } from '../runtime.ts';
import { buildVitGraph } from './build.ts';
import { interpolatePositions } from './positions.ts';
import { resolveTransformersModel, asSafetensors } from './files.ts';
import { deviceKernels, halfPrecision } from '../numerics.ts';
import type { Precision } from '../onnx/precision.ts';
import { parseVitConfig, type VitConfig } from './config.ts';

export { parseVitConfig, type VitConfig } from './config.ts';
export { buildVitGraph } from './build.ts';
export { bicubicResize, interpolatePositions } from './positions.ts';

export const DINO_FACETS = ['key', 'query', 'value', 'token'] as const;
export type DinoFacet = (typeof DINO_FACETS)[number];
/** Amir et al.'s correspondence settings for ViT-S/8: block 9, key facet, stride 4. */
export const DINO_DEFAULTS = { model: 'facebook/dino-vits8', layer: 9, facet: 'key', stride: 4 } as const;
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

export interface DinoOptions extends SessionOptions, HubOptions {
  /** Block whose facet is the descriptor (0-based; default 9, or the last block of a shallower model). */
  layer?: number;
  facet?: DinoFacet;
  /** Patch stride (default 4: overlapping patches; the patch size gives the plain ViT). */
  stride?: number;
  allowDownload?: boolean;
  cacheDir?: string;
  /** "fp16" on GPUs, "fp16-emulated" anywhere (see UNet LoadOptions.precision); default fp32. */
  precision?: Precision;
}

/** ImageNet-normalised [1, 3, H, W] pixels of an RGB image. */
export function dinoPixels(rgb: { data: Uint8Array; width: number; height: number }): Tensor {
  const { width: w, height: h } = rgb;
  const out = new Float32Array(3 * h * w);
  for (let i = 0; i < h * w; i++)
    for (let c = 0; c < 3; c++)
      out[c * h * w + i] = (rgb.data[i * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  return new Tensor(out, [1, 3, h, w]);
}

export class DinoModel {
  readonly config: VitConfig;
  readonly modelId: string;
  readonly layer: number;
  readonly facet: DinoFacet;
  readonly stride: number;
  private readonly positions: Tensor;
  private readonly session: Session;

  private constructor(
    modelId: string,
    config: VitConfig,
    o: { layer: number; facet: DinoFacet; stride: number },
    positions: Tensor,
    session: Session,
  ) {
    this.modelId = modelId;
    this.config = config;
    this.layer = o.layer;
    this.facet = o.facet;
    this.stride = o.stride;
    this.positions = positions;
    this.session = session;
  }

  /**
   * Load a transformers ViT (folder or hub id) and build the graph up to the descriptor block.
   * @throws ConfigError for bad options, ModelError for unusable checkpoints, NetworkError offline.
   */
  static async load(model: string = DINO_DEFAULTS.model, o: DinoOptions = {}): Promise<DinoModel> {
    const facet = o.facet ?? DINO_DEFAULTS.facet;
    if (!(DINO_FACETS as readonly string[]).includes(facet))
      throw new ConfigError(messages.invalidOption('facet', DINO_FACETS.join(' | '), facet));
    const files = await resolveTransformersModel(model, o, 'ViT', 'facebook/dino-vits8');
    const config = parseVitConfig(files.configPath, readJson(files.configPath, 'ViT config'));
    const layer = o.layer ?? Math.min(DINO_DEFAULTS.layer, config.layers - 1);
    if (!Number.isInteger(layer) || layer < 0 || layer >= config.layers)
      throw new ConfigError(
        messages.invalidOption('layer', `a block index in 0..${config.layers - 1}`, layer),
      );
    const stride = o.stride ?? Math.min(DINO_DEFAULTS.stride, config.patchSize);
    if (!Number.isInteger(stride) || stride < 1 || stride > config.patchSize)
      throw new ConfigError(
        messages.invalidOption('stride', `an integer in 1..${config.patchSize} (the patch size)`, stride),
      );
    const weights = files.weights.endsWith('.bin') ? await asSafetensors(files.weights) : files.weights;
    const reader = await SafetensorsReader.open(weights);
    let positions: Tensor;
    try {
      const name = reader.names().find((n) => /^(vit\.)?embeddings\.position_embeddings$/.test(n));
      if (!name)
        throw new ModelError(
          `${weights}: no embeddings.position_embeddings (is this a ViTModel checkpoint?)`,
        );
      positions = await reader.read(name);
    } finally {
      await reader.close();
    }
    const { twoPassNorm } = deviceKernels(o.device);
    const precision = halfPrecision(o.precision, o.device);
    const session = await cachedSession(
      {
        component: 'dino',
        config,
        options: { layer, stride, ...(twoPassNorm ? { twoPassNorm } : {}) },
        weightFiles: [weights],
        build: (w) => buildVitGraph(config, w, { layer, stride, twoPassNorm }),
        ignoreUnused: /(encoder\.layer\.\d+\.|pooler\.|layernorm\.|classifier\.|position_embeddings)/,
        precision,
        cacheDir: o.cacheDir,
      },
      (path) => Session.create(path, o),
    );
    return new DinoModel(model, config, { layer, facet, stride }, positions, session);
  }

  /** Patch grid of an H x W input. */
  grid(height: number, width: number): [number, number] {
    const { patchSize: p } = this.config;
    if (height < p || width < p)
      throw new ConfigError(`DINO input ${width}x${height} is smaller than one ${p}x${p} patch`);
    return [Math.floor((height - p) / this.stride) + 1, Math.floor((width - p) / this.stride) + 1];
  }

  /** Every output of the graph for normalised pixels [1, 3, H, W] (tokens include CLS first). */
  async run(pixels: Tensor): Promise<Record<string, Tensor>> {
    pixels.expectShape('pixel_values', [1, 3, -1, -1]);
    const [gh, gw] = this.grid(pixels.shape[2], pixels.shape[3]);
    return this.session.run({
      pixel_values: pixels,
      position_embeddings: interpolatePositions(this.positions, gh, gw),
    });
  }

  /** The descriptor map [1, D, gh, gw] of an image loaded (plain bilinear resize) at loadSize x loadSize. */
  async describeImage(
    image: ImageInput,
    o: { loadSize?: number; colorManaged?: boolean } = {},
  ): Promise<Tensor> {
    const size = o.loadSize ?? 224;
    const rgb = resizeRgb(await decodeImage(image, { colorManaged: o.colorManaged }), size, size);
    const out = await this.run(dinoPixels(rgb));
    const facet = out[this.facet === 'token' ? 'tokens' : this.facet];
    const [gh, gw] = this.grid(size, size);
    const d = this.config.hiddenSize;
    const map = new Float32Array(d * gh * gw);
    for (let i = 0; i < gh * gw; i++)
      for (let c = 0; c < d; c++) map[c * gh * gw + i] = facet.data[(1 + i) * d + c];
    return new Tensor(map, [1, d, gh, gw]);
  }

  /** What the descriptors are, for results files. */
  describe(): string {
    return `DINO ViT ${this.modelId}: ${this.facet} facet of block ${this.layer} (0-based) of ${this.config.layers}, heads concatenated, CLS dropped, patch ${this.config.patchSize} with stride ${this.stride} (Amir et al.'s dense-descriptor settings; their log-binning not applied)`;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}
