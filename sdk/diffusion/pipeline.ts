/** A loaded Stable Diffusion checkpoint: UNet with taps, VAE, text encoder + tokenizer. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveModel, type HubOptions } from '../model/hub.ts';
import { resolveComponent } from '../model/checkpoint.ts';
import { graphKey } from '../model/cache.ts';
import { UNet, parseUNetConfig, unetNumerics, type LoadOptions } from '../model/unet/index.ts';
import { ModelError } from '../core/errors.ts';
import { Vae } from '../model/vae/index.ts';
import { TextEncoder } from '../model/clip/index.ts';

export interface PipelineOptions extends LoadOptions, Omit<HubOptions, 'fp16'> {
  /** Download from the hub when the id is not cached (default false: offline-first). */
  allowDownload?: boolean;
}

export interface StableDiffusion {
  /** What the user passed (folder or hub id). */
  modelId: string;
  dir: string;
  /** Identity of the weights + config, for feature cache keys. */
  modelHash: string;
  unet: UNet;
  vae: Vae;
  textEncoder: TextEncoder;
  dispose(): Promise<void>;
}

/**
 * Load every component of a diffusers checkpoint (local folder or hub id).
 * @throws ModelError / ConfigError / NetworkError / DeviceError
 */
export async function loadStableDiffusion(
  model: string,
  options: PipelineOptions = {},
): Promise<StableDiffusion> {
  const dir = await resolveModel(model, { ...options, fp16: options.variant === 'fp16' });
  // the feature cache key covers everything that changes features: every component's config and
  // weights, and the tokenizer's files (replacing vae/ weights must not return old features)
  const parts = (['unet', 'vae', 'text_encoder'] as const).map((c) => resolveComponent(dir, c, options));
  const unetConfig = parseUNetConfig(parts[0].configPath, parts[0].config);
  if (unetConfig.classEmbedType === 'projection' || unetConfig.inChannels !== 4)
    throw new ModelError(
      `${model}: this is a Lotus checkpoint (${unetConfig.inChannels}-channel input${unetConfig.classEmbedType ? ', task switcher' : ''}), not a text-to-image Stable Diffusion model; use \`hyperfeatures lotus\` or Lotus.fromModel for it`,
    );
  const tokenizerDir = join(dir, 'tokenizer');
  const tokenizerFiles = existsSync(tokenizerDir)
    ? readdirSync(tokenizerDir)
        .sort()
        .map((f) => join(tokenizerDir, f))
    : [];
  // and the UNet options that change its numbers: features made with them are never returned
  // for the exact fp32 graph, or back
  const modelHash = graphKey(
    'model',
    parts.map((p) => p.config),
    unetNumerics(options),
    [...parts.flatMap((p) => p.weightFiles), ...tokenizerFiles],
  );
  const unet = await UNet.load(dir, options);
  const vae = await Vae.load(dir, options);
  const textEncoder = await TextEncoder.load(dir, options);
  return {
    modelId: model,
    dir,
    modelHash,
    unet,
    vae,
    textEncoder,
    async dispose() {
      await Promise.all([unet.dispose(), vae.dispose(), textEncoder.dispose()]);
    },
  };
}
