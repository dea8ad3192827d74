/**
 * DINOv2 (Oquab et al. 2023) and DINOv2 with registers (Darcet et al. 2024) as dense
 * descriptors: hub checkpoints in transformers format (`facebook/dinov2-{small,base,large,
 * giant}`, `facebook/dinov2-with-registers-*`: config.json + model.safetensors, or
 * pytorch_model.bin through the restricted unpickler), built by our graph builder. The
 * descriptor is one facet of one block's patch tokens (CLS and registers dropped), at stride =
 * patch size. Defaults follow SD-DINO (Zhang et al. 2023): the last block's token facet.
 */
import { ConfigError, ModelError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { SafetensorsReader } from '../../core/safetensors.ts';
import { Tensor } from '../../core/tensor.ts';
import { decodeImage, resizeRgb, type ImageInput } from '../../data/image.ts';
import { createHash } from 'node:crypto';
import { FeatureCache } from '../../diffusion/cache.ts';
import { FeatureStack } from '../../diffusion/feature-stack.ts';
import { readJson } from '../config.ts';
import { cachedSession, graphKey } from '../cache.ts';
import type { HubOptions } from '../hub.ts';
import { deviceKernels, halfPrecision } from '../numerics.ts';
import type { HalfPrecision, Precision } from '../onnx/precision.ts';
import { Session, type SessionOptions } from '../runtime.ts';
import { DINO_FACETS, dinoPixels, type DinoFacet } from '../dino/index.ts';
import { asSafetensors, resolveTransformersModel } from '../dino/files.ts';
import {
  interpolatePositions,
  POSITION_INTERPOLATIONS,
  type PositionInterpolation,
} from '../dino/positions.ts';
import { buildDinov2Graph } from './build.ts';
import { parseDinov2Config, type Dinov2Config } from './config.ts';

export { parseDinov2Config, ffnHiddenSize, type Dinov2Config } from './config.ts';
export { buildDinov2Graph } from './build.ts';

/** SD-DINO's DINOv2 settings: ViT-B/14, token facet of the last block, 840 px input (60 x 60). */
export const DINOV2_DEFAULTS = { model: 'facebook/dinov2-base', facet: 'token', loadSize: 840 } as const;

export interface Dinov2Options extends SessionOptions, HubOptions {
  /** Block whose facet is the descriptor (0-based; default the last). */
  layer?: number;
  facet?: DinoFacet;
  /**
   * How the position table is resized (model/dino/positions.ts). Default: `offset` for
   * Dinov2Model (facebookresearch/dinov2 and transformers <= 4.43; SD-DINO's), `antialias` for
   * Dinov2WithRegistersModel (transformers and the original `_reg` models).
   */
  positions?: PositionInterpolation;
  allowDownload?: boolean;
  cacheDir?: string;
  /** Descriptor cache folder (default the feature cache); `false` computes every time. */
  featureCache?: string | false;
  /** "fp16" on GPUs, "fp16-emulated" anywhere (see UNet LoadOptions.precision); default fp32. */
  precision?: Precision;
}

/** The patch tokens of [1, T, D] (after `skip` leading tokens) as a [1, D, gh, gw] map. */
export function tokensToMap(tokens: Tensor, skip: number, gh: number, gw: number): Tensor {
  const d = tokens.shape[2];
  const map = new Float32Array(d * gh * gw);
  for (let i = 0; i < gh * gw; i++)
    for (let c = 0; c < d; c++) map[c * gh * gw + i] = tokens.data[(skip + i) * d + c];
  return new Tensor(map, [1, d, gh, gw]);
}

/** The parts of a `Dinov2Model.mapName`, for saying what differs. */
export function parseDinov2MapName(
  name: string,
): { width: number; layer: number; facet: string; size: number; weights: string } | undefined {
  const m = /^dinov2:(\d+)d:block(\d+):(\w+):(\d+)px:(\w+)$/.exec(name);
  return m ? { width: +m[1], layer: +m[2], facet: m[3], size: +m[4], weights: m[5] } : undefined;
}

export class Dinov2Model {
  private constructor(
    readonly modelId: string,
    readonly config: Dinov2Config,
    readonly layer: number,
    readonly facet: DinoFacet,
    readonly positions: PositionInterpolation,
    /** The weights file (a cached conversion for pytorch_model.bin). */
    readonly weightsFile: string,
    private readonly table: Tensor,
    private readonly session: Session,
    /** Config and weights by content: what cached descriptors are keyed on. */
    readonly modelHash: string,
    private readonly cache: FeatureCache | undefined,
    /** Half precision of the graph (undefined: fp32); cached descriptors are kept apart by it. */
    readonly precision?: HalfPrecision,
  ) {}

  /**
   * Load a transformers DINOv2 (folder or hub id) and build the graph up to the descriptor block.
   * @throws ConfigError for bad options or unsupported configs (naming the field), ModelError
   *   for unusable checkpoints, NetworkError offline.
   */
  static async load(model: string = DINOV2_DEFAULTS.model, o: Dinov2Options = {}): Promise<Dinov2Model> {
    const facet = o.facet ?? DINOV2_DEFAULTS.facet;
    if (!(DINO_FACETS as readonly string[]).includes(facet))
      throw new ConfigError(messages.invalidOption('facet', DINO_FACETS.join(' | '), facet));
    if (o.positions !== undefined && !(POSITION_INTERPOLATIONS as readonly string[]).includes(o.positions))
      throw new ConfigError(
        messages.invalidOption('positions', POSITION_INTERPOLATIONS.join(' | '), o.positions),
      );
    const files = await resolveTransformersModel(model, o, 'DINOv2', DINOV2_DEFAULTS.model);
    const config = parseDinov2Config(files.configPath, readJson(files.configPath, 'DINOv2 config'));
    const layer = o.layer ?? config.layers - 1;
    if (!Number.isInteger(layer) || layer < 0 || layer >= config.layers)
      throw new ConfigError(
        messages.invalidOption('layer', `a block index in 0..${config.layers - 1}`, layer),
      );
    const positions = o.positions ?? (config.registers > 0 ? 'antialias' : 'offset');
    const weights = files.weights.endsWith('.bin') ? await asSafetensors(files.weights) : files.weights;
    const reader = await SafetensorsReader.open(weights);
    let table: Tensor;
    try {
      const name = reader
        .names()
        .find((n) => /^(dinov2(_with_registers)?\.)?embeddings\.position_embeddings$/.test(n));
      if (!name)
        throw new ModelError(
          `${weights}: no embeddings.position_embeddings (is this a Dinov2Model checkpoint?)`,
        );
      table = await reader.read(name);
    } finally {
      await reader.close();
    }
    const { twoPassNorm } = deviceKernels(o.device);
    const precision = halfPrecision(o.precision, o.device);
    const session = await cachedSession(
      {
        component: 'dinov2',
        config,
        options: { layer, ...(twoPassNorm ? { twoPassNorm } : {}) },
        weightFiles: [weights],
        build: (w) => buildDinov2Graph(config, w, { layer, twoPassNorm }),
        ignoreUnused: /(encoder\.layer\.\d+\.|layernorm\.|classifier\.|position_embeddings|mask_token)/,
        precision,
        cacheDir: o.cacheDir,
      },
      (path) => Session.create(path, o),
    );
    const modelHash = graphKey('dinov2-model', config, {}, [weights]);
    const cache = o.featureCache === false ? undefined : new FeatureCache(o.featureCache);
    return new Dinov2Model(
      model,
      config,
      layer,
      facet,
      positions,
      weights,
      table,
      session,
      modelHash,
      cache,
      precision,
    );
  }

  /** Patch grid of an H x W input (transformers floors: a remainder of pixels is not seen). */
  grid(height: number, width: number): [number, number] {
    const p = this.config.patchSize;
    if (height < p || width < p)
      throw new ConfigError(`DINOv2 input ${width}x${height} is smaller than one ${p}x${p} patch`);
    return [Math.floor(height / p), Math.floor(width / p)];
  }

  /** Every output of the graph for normalised pixels [1, 3, H, W] (tokens: CLS, registers, patches). */
  async run(pixels: Tensor): Promise<Record<string, Tensor>> {
    pixels.expectShape('pixel_values', [1, 3, -1, -1]);
    const [H, W] = [pixels.shape[2], pixels.shape[3]];
    const [gh, gw] = this.grid(H, W);
    return this.session.run({
      pixel_values: pixels,
      position_embeddings: interpolatePositions(this.table, gh, gw, this.positions, H === W),
    });
  }

  /** The descriptor map [1, D, gh, gw] of normalised pixels whose sides are multiples of the patch. */
  async describePixels(pixels: Tensor): Promise<Tensor> {
    const [H, W] = [pixels.shape[2], pixels.shape[3]];
    const p = this.config.patchSize;
    if (H % p || W % p)
      throw new ConfigError(
        `DINOv2 input ${W}x${H}: sides must be multiples of the patch size ${p} (nearest: ${roundTo(W, p)}x${roundTo(H, p)})`,
      );
    // cached like SD features: by the model's config and weights, the pixels and the settings
    const key = FeatureCache.key(this.modelHash, createHash('sha256').update(pixels.data).digest('hex'), {
      descriptor: 'dinov2',
      layer: this.layer,
      facet: this.facet,
      positions: this.positions,
      H,
      W,
      ...(this.precision ? { precision: this.precision } : {}),
    });
    const hit = await this.cache?.get(key);
    if (hit) return hit.maps[0][0];
    const out = await this.run(pixels);
    const facet = out[this.facet === 'token' ? 'tokens' : this.facet];
    const [gh, gw] = this.grid(H, W);
    const map = tokensToMap(facet, 1 + this.config.registers, gh, gw);
    const meta = { model: this.modelId, mode: 'vit' as const, steps: 0, imageSize: H, seed: null };
    await this.cache?.put(key, new FeatureStack([0], [this.layer + 1], [[map]], meta));
    return map;
  }

  /** The descriptor map of an image loaded (plain bilinear resize) at loadSize x loadSize. */
  async describeImage(
    image: ImageInput,
    o: { loadSize?: number; colorManaged?: boolean } = {},
  ): Promise<Tensor> {
    const size = o.loadSize ?? DINOV2_DEFAULTS.loadSize;
    const p = this.config.patchSize;
    if (!Number.isInteger(size) || size < p || size % p)
      throw new ConfigError(
        messages.invalidOption(
          'loadSize',
          `a multiple of the patch size ${p} (nearest: ${roundTo(size, p)})`,
          size,
        ),
      );
    const rgb = resizeRgb(await decodeImage(image, { colorManaged: o.colorManaged }), size, size);
    return this.describePixels(dinoPixels(rgb));
  }

  /**
   * The name an aggregation network records for this model's maps at `size` px (ours+dinov2):
   * width, block, facet, input size and the weights' hash, so a network is never fed maps of
   * another DINOv2, block, facet or size.
   */
  mapName(size: number): string {
    return `dinov2:${this.config.hiddenSize}d:block${this.layer}:${this.facet}:${size}px:${this.modelHash.slice(0, 12)}`;
  }

  /** What the descriptors are, for results files. */
  describe(): string {
    const c = this.config;
    return `DINOv2 ${this.modelId}${c.registers ? ` (${c.registers} registers)` : ''}: ${this.facet} facet of block ${this.layer} (0-based) of ${c.layers}, CLS${c.registers ? ' and registers' : ''} dropped, patch ${c.patchSize}, positions interpolated "${this.positions}"`;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

function roundTo(x: number, p: number): number {
  return Math.max(p, Math.round(x / p) * p);
}
