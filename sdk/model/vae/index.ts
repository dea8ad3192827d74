/** Load a diffusers AutoencoderKL; encode images to posteriors and decode latents. */
import { ConfigError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { Rng } from '../../core/rng.ts';
import { Tensor, concat } from '../../core/tensor.ts';
import { tiled, type TileSettings } from './tiling.ts';
import { resolveComponent } from '../checkpoint.ts';
import { cachedSession } from '../cache.ts';
import { Session, type DeviceTensor } from '../runtime.ts';
import { scaleOnDevice } from '../device-ops.ts';
import type { LoadOptions as UNetLoadOptions } from '../unet/index.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from './build.ts';
import { deviceKernels, halfPrecision } from '../numerics.ts';
import { parseVaeConfig, type VaeConfig } from './config.ts';

export { parseVaeConfig, SD_SCALING_FACTOR, type VaeConfig } from './config.ts';
export { tiled, type TileSettings } from './tiling.ts';

export const VAE_PARTS = ['encoder', 'decoder'] as const;
export type VaePart = (typeof VAE_PARTS)[number];

export interface VaeLoadOptions extends Omit<UNetLoadOptions, 'taps'> {
  /** Which halves to load (default both). */
  parts?: readonly VaePart[];
  /**
   * Memory the VAE may use for one image before it switches to tiles (bytes; default 6 GiB, or
   * HYPERFEATURES_VAE_MEMORY in GiB). The estimate is the decoder's full-resolution activations.
   */
  memoryBudget?: number;
}

/**
 * The VAE memory budget someone asked for: `memoryBudget` (bytes), else HYPERFEATURES_VAE_MEMORY
 * (GiB, when a positive number), else undefined (the caller's default decides).
 */
export function requestedVaeBudget(memoryBudget?: number): number | undefined {
  const env = Number(process.env.HYPERFEATURES_VAE_MEMORY);
  return memoryBudget ?? (env > 0 ? env * 2 ** 30 : undefined);
}

/** "auto": tiles only when the image's estimated memory exceeds the budget; "off"; or explicit tiles. */
export type VaeTiling = 'auto' | 'off' | TileSettings;

/** Bytes per image pixel the VAE decoder holds at full resolution, per channel of its widest full-resolution block. */
const BYTES_PER_PIXEL_CHANNEL = 96;

/** The diagonal Gaussian posterior of an image, each [B, latent_channels, h, w]. */
export interface Posterior {
  mean: Tensor;
  std: Tensor;
  logvar: Tensor;
}

export class Vae {
  readonly config: VaeConfig;
  readonly memoryBudget: number;
  private readonly encoder?: Session;
  private readonly decoder?: Session;

  private constructor(config: VaeConfig, memoryBudget: number, encoder?: Session, decoder?: Session) {
    this.config = config;
    this.memoryBudget = memoryBudget;
    this.encoder = encoder;
    this.decoder = decoder;
  }

  /** Bytes of the loaded halves' weights. */
  get weightBytes(): number {
    return (this.encoder?.modelBytes ?? 0) + (this.decoder?.modelBytes ?? 0);
  }

  /** Estimated bytes to encode or decode an H x W image in one piece. */
  estimateBytes(height: number, width: number): number {
    return height * width * this.config.blockOutChannels[0] * BYTES_PER_PIXEL_CHANNEL;
  }

  /** The tiles to use for an H x W image: none when it fits the budget (or tiling is off). */
  tilesFor(
    height: number,
    width: number,
    tiling: VaeTiling = 'auto',
    budget = this.memoryBudget,
  ): TileSettings | undefined {
    if (tiling === 'off') return undefined;
    if (tiling !== 'auto') {
      if (!Number.isInteger(tiling.tile) || tiling.tile < 16 || tiling.tile % 8)
        throw new ConfigError(
          messages.invalidOption('tile', 'a multiple of 8, at least 16 pixels', tiling.tile),
        );
      return tiling;
    }
    if (this.estimateBytes(height, width) <= budget) return undefined;
    // the largest multiple of 64 (at most 512, SD's own size) whose tile fits the budget
    let tile = 512;
    while (tile > 64 && this.estimateBytes(tile, tile) > budget) tile -= 64;
    return { tile, overlap: 0.25 };
  }

  /** @throws ModelError / ConfigError listing every mismatch; DeviceError for providers. */
  static async load(modelDir: string, options: VaeLoadOptions = {}): Promise<Vae> {
    const files = resolveComponent(modelDir, 'vae', options);
    const config = parseVaeConfig(files.configPath, files.config);
    const parts = options.parts ?? VAE_PARTS;
    const { twoPassNorm } = deviceKernels(options.device);
    const precision = halfPrecision(options.precision, options.device);
    const load = async (part: VaePart) => {
      return cachedSession(
        {
          component: `vae-${part}`,
          config,
          ...(twoPassNorm ? { options: { twoPassNorm } } : {}),
          weightFiles: files.weightFiles,
          build: (weights) =>
            part === 'encoder'
              ? buildVaeEncoderGraph(config, weights, { twoPassNorm })
              : buildVaeDecoderGraph(config, weights, { twoPassNorm }),
          ignoreUnused: part === 'encoder' ? /^(decoder\.|post_quant_conv)/ : /^(encoder\.|quant_conv)/,
          precision,
          cacheDir: options.cacheDir,
        },
        (path) => Session.create(path, options),
      );
    };
    const encoder = parts.includes('encoder') ? await load('encoder') : undefined;
    const decoder = parts.includes('decoder') ? await load('decoder') : undefined;
    return new Vae(config, requestedVaeBudget(options.memoryBudget) ?? 6 * 2 ** 30, encoder, decoder);
  }

  /**
   * Posterior of `image` [B, 3, H, W] in [-1, 1] (diffusers `vae.encode(x).latent_dist`); above
   * the memory budget in overlapping tiles (diffusers' tiled_encode: mean and log-variance blended).
   */
  async encode(image: Tensor, o: { tiling?: VaeTiling } = {}): Promise<Posterior> {
    const encoder = this.encoder;
    if (!encoder)
      throw new ConfigError(
        messages.invalidOption('parts', 'to include "encoder" to encode', 'decoder only'),
      );
    image.expectShape('vae image', [-1, this.config.inChannels, -1, -1]);
    const [B, , H, W] = image.shape;
    const tiles = this.tilesFor(H, W, o.tiling);
    if (!tiles) {
      const out = await encoder.run({ image });
      return { mean: out.posterior_mean, std: out.posterior_std, logvar: out.posterior_logvar };
    }
    const parts = await Promise.all(
      Array.from({ length: B }, async (_, b) => {
        const [mean, logvar] = await tiled(
          image.sliceFirst(b),
          tiles.tile,
          1 / 8,
          tiles.overlap ?? 0.25,
          async (t) => {
            const out = await encoder.run({ image: t });
            return [out.posterior_mean, out.posterior_logvar];
          },
        );
        return { mean, logvar };
      }),
    );
    const mean = concat(
      parts.map((p) => p.mean),
      0,
    );
    const logvar = concat(
      parts.map((p) => p.logvar),
      0,
    );
    // DiagonalGaussianDistribution on the blended moments
    const clamped = logvar.map((v) => Math.min(Math.max(v, -30), 20));
    return { mean, logvar: clamped, std: clamped.map((v) => Math.exp(0.5 * v)) };
  }

  /** diffusers `vae.decode(z).sample`: z is the unscaled latent; above the budget in tiles (tiled_decode). */
  async decode(z: Tensor, o: { tiling?: VaeTiling } = {}): Promise<Tensor> {
    const decoder = this.decoder;
    if (!decoder)
      throw new ConfigError(
        messages.invalidOption('parts', 'to include "decoder" to decode', 'encoder only'),
      );
    z.expectShape('vae latent', [-1, this.config.latentChannels, -1, -1]);
    const [B, , h, w] = z.shape;
    const tiles = this.tilesFor(h * 8, w * 8, o.tiling);
    if (!tiles) return (await decoder.run({ latent: z })).decoded;
    const images = [];
    for (let b = 0; b < B; b++)
      images.push(
        (
          await tiled(z.sliceFirst(b), tiles.tile / 8, 8, tiles.overlap ?? 0.25, async (t) => [
            (await decoder.run({ latent: t })).decoded,
          ])
        )[0],
      );
    return concat(images, 0);
  }

  /** Decode UNet-space latents (divides by the scaling factor first). */
  async decodeLatents(latents: Tensor, o: { tiling?: VaeTiling } = {}): Promise<Tensor> {
    const s = this.config.scalingFactor;
    return this.decode(
      latents.map((v) => v / s),
      o,
    );
  }

  /**
   * decodeLatents for a latent already on the GPU (a UNet's {@link DeviceTensor} output): the
   * scaling and the decoder run there, and only the image comes back. Not tiled. The latent is
   * released.
   */
  async decodeLatentsOnDevice(latents: DeviceTensor): Promise<Tensor> {
    const decoder = this.decoder;
    if (!decoder)
      throw new ConfigError(
        messages.invalidOption('parts', 'to include "decoder" to decode', 'encoder only'),
      );
    const z = await scaleOnDevice(latents, 1 / this.config.scalingFactor, decoder.device);
    try {
      return (await decoder.run({ latent: z })).decoded;
    } finally {
      z.dispose();
    }
  }

  /** UNet-space latent from a posterior: (mean, or mean + std * eps) x scaling factor. */
  latentFromPosterior(p: Posterior, sample: { eps?: Tensor; seed?: number } | 'mean' = 'mean'): Tensor {
    const s = this.config.scalingFactor;
    if (sample === 'mean') return p.mean.map((m) => m * s);
    const eps = sample.eps ?? new Tensor(new Rng(sample.seed ?? 0).normalArray(p.mean.size), p.mean.shape);
    eps.expectShape('posterior eps', p.mean.shape);
    return p.mean.map((m, i) => (m + p.std.data[i] * eps.data[i]) * s);
  }

  async dispose(): Promise<void> {
    await this.encoder?.dispose();
    await this.decoder?.dispose();
  }
}
