/** Load a diffusers AutoencoderKL; encode images to posteriors and decode latents. */
import { ConfigError } from '../../core/errors.ts';
import { messages } from '../../core/messages.ts';
import { Rng } from '../../core/rng.ts';
import { Tensor } from '../../core/tensor.ts';
import { resolveComponent } from '../checkpoint.ts';
import { cachedSession } from '../cache.ts';
import { Session } from '../runtime.ts';
import type { LoadOptions as UNetLoadOptions } from '../unet/index.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from './build.ts';
import { parseVaeConfig, type VaeConfig } from './config.ts';

export { parseVaeConfig, SD_SCALING_FACTOR, type VaeConfig } from './config.ts';

export const VAE_PARTS = ['encoder', 'decoder'] as const;
export type VaePart = (typeof VAE_PARTS)[number];

export interface VaeLoadOptions extends Omit<UNetLoadOptions, 'taps'> {
  /** Which halves to load (default both). */
  parts?: readonly VaePart[];
}

/** The diagonal Gaussian posterior of an image, each [B, latent_channels, h, w]. */
export interface Posterior {
  mean: Tensor;
  std: Tensor;
  logvar: Tensor;
}

export class Vae {
  readonly config: VaeConfig;
  private readonly encoder?: Session;
  private readonly decoder?: Session;

  private constructor(config: VaeConfig, encoder?: Session, decoder?: Session) {
    this.config = config;
    this.encoder = encoder;
    this.decoder = decoder;
  }

  /** @throws ModelError / ConfigError listing every mismatch; DeviceError for providers. */
  static async load(modelDir: string, options: VaeLoadOptions = {}): Promise<Vae> {
    const files = resolveComponent(modelDir, 'vae', options);
    const config = parseVaeConfig(files.configPath, files.config);
    const parts = options.parts ?? VAE_PARTS;
    const load = async (part: VaePart) => {
      return cachedSession(
        {
          component: `vae-${part}`,
          config,
          weightFiles: files.weightFiles,
          build: (weights) =>
            part === 'encoder'
              ? buildVaeEncoderGraph(config, weights)
              : buildVaeDecoderGraph(config, weights),
          ignoreUnused: part === 'encoder' ? /^(decoder\.|post_quant_conv)/ : /^(encoder\.|quant_conv)/,
          cacheDir: options.cacheDir,
        },
        (path) => Session.create(path, options),
      );
    };
    const encoder = parts.includes('encoder') ? await load('encoder') : undefined;
    const decoder = parts.includes('decoder') ? await load('decoder') : undefined;
    return new Vae(config, encoder, decoder);
  }

  /** Posterior of `image` [B, 3, H, W] in [-1, 1] (diffusers `vae.encode(x).latent_dist`). */
  async encode(image: Tensor): Promise<Posterior> {
    if (!this.encoder)
      throw new ConfigError(
        messages.invalidOption('parts', 'to include "encoder" to encode', 'decoder only'),
      );
    image.expectShape('vae image', [-1, this.config.inChannels, -1, -1]);
    const out = await this.encoder.run({ image });
    return { mean: out.posterior_mean, std: out.posterior_std, logvar: out.posterior_logvar };
  }

  /** diffusers `vae.decode(z).sample`: z is the unscaled latent. */
  async decode(z: Tensor): Promise<Tensor> {
    if (!this.decoder)
      throw new ConfigError(
        messages.invalidOption('parts', 'to include "decoder" to decode', 'encoder only'),
      );
    z.expectShape('vae latent', [-1, this.config.latentChannels, -1, -1]);
    return (await this.decoder.run({ latent: z })).decoded;
  }

  /** Decode UNet-space latents (divides by the scaling factor first). */
  async decodeLatents(latents: Tensor): Promise<Tensor> {
    const s = this.config.scalingFactor;
    return this.decode(latents.map((v) => v / s));
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
