/**
 * The authors' released aggregation networks (hub repo g-luo/diffusion-hyperfeatures,
 * folder weights/), chosen by the FAMILY of the diffusion model, read from its UNet config
 * (never from its name: a folder called "tiny-sd15" is not SD-1.5). A model of another
 * family has no official network; asking for one is an error, never a silent substitute.
 */
import { ConfigError } from '../core/errors.ts';
import { resolveComponent } from '../model/checkpoint.ts';
import { resolveModel, type HubOptions } from '../model/hub.ts';
import { hubFile } from '../model/hub.ts';
import { parseUNetConfig, type UNetConfig } from '../model/unet/config.ts';

export const OFFICIAL_REPO = 'g-luo/diffusion-hyperfeatures';

export type ModelFamily = 'sd15' | 'sd21';
export type NetworkVariant = 'multi-step' | 'one-step';

const FILES: Record<ModelFamily, Partial<Record<NetworkVariant, string>>> = {
  sd15: {
    'multi-step': 'weights/aggregation_network.pt',
    'one-step': 'weights/aggregation_network_one-step.pt',
  },
  sd21: { 'multi-step': 'weights/aggregation_network_sdv2-1.pt' },
};

/**
 * SD-1.x: widths [320, 640, 1280, 1280], 768-dim text context, 8 heads, conv attention
 * projections. SD-2.x: the same widths, 1024-dim context, head dims [5, 10, 20, 20], linear
 * projections. Anything else (tiny test models, Lotus's 8-channel input, SDXL) is undefined.
 */
export function modelFamily(c: UNetConfig): ModelFamily | undefined {
  const sdWidths = c.blockOutChannels.join() === '320,640,1280,1280' && c.layersPerBlock === 2;
  if (!sdWidths || c.inChannels !== 4 || c.outChannels !== 4 || c.classEmbedType !== null) return undefined;
  if (c.crossAttentionDim === 768 && !c.useLinearProjection) return 'sd15';
  if (c.crossAttentionDim === 1024 && c.useLinearProjection) return 'sd21';
  return undefined;
}

/** The official network file for a family and variant, or undefined when none was released. */
export function officialNetworkFile(family: ModelFamily | undefined, variant: NetworkVariant = 'multi-step') {
  return family ? FILES[family][variant] : undefined;
}

/** The UNet config of a model folder or (cached / downloadable) hub id, without building graphs. */
export async function readUNetConfig(
  model: string,
  options: HubOptions & { allowDownload?: boolean; variant?: 'fp16' } = {},
): Promise<UNetConfig> {
  const dir = await resolveModel(model, { ...options, fp16: options.variant === 'fp16' });
  const files = resolveComponent(dir, 'unet', options);
  return parseUNetConfig(files.configPath, files.config);
}

/**
 * Local path of the official network for a model (cache, or download when allowed).
 * @throws ConfigError when the model's family has no released network for `variant`.
 */
export async function officialNetwork(
  model: { modelId: string; unet: { config: UNetConfig } } | { modelId: string; config: UNetConfig },
  variant: NetworkVariant,
  options: HubOptions & { allowDownload?: boolean } = {},
): Promise<string> {
  const config = 'unet' in model ? model.unet.config : model.config;
  const family = modelFamily(config);
  const file = officialNetworkFile(family, variant);
  if (!file)
    throw new ConfigError(
      family
        ? `no official ${variant} aggregation network was released for ${family === 'sd15' ? 'SD-1.5' : 'SD-2.1'} (${model.modelId}); pass a network checkpoint`
        : `no official aggregation network is known for ${model.modelId}: its UNet is neither SD-1.5 nor SD-2.1 shaped (the authors released networks for those only); pass a network checkpoint, or AggregationNetwork.forModel(sd) to train one`,
    );
  return hubFile(OFFICIAL_REPO, file, options);
}
