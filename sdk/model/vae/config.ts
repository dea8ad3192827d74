/** AutoencoderKL config (diffusers), validated for what the builder supports. */
import { ConfigReader, type RawConfig } from '../config.ts';

export const SD_SCALING_FACTOR = 0.18215;

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normGroups: number;
  /** Latents are multiplied by this before the UNet (0.18215 for SD 1.x/2.x). */
  scalingFactor: number;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
}

/** @throws ConfigError naming every unsupported field. */
export function parseVaeConfig(path: string, raw: RawConfig): VaeConfig {
  const c = new ConfigReader(path, raw);
  c.oneOf('_class_name', ['AutoencoderKL'], 'AutoencoderKL');
  c.oneOf('act_fn', ['silu'], 'silu');
  c.oneOf('mid_block_add_attention', [true], true);
  c.strings('down_block_types', ['DownEncoderBlock2D']);
  c.strings('up_block_types', ['UpDecoderBlock2D']);
  const cfg: VaeConfig = {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    latentChannels: c.int('latent_channels', 4),
    blockOutChannels: c.ints('block_out_channels'),
    layersPerBlock: c.int('layers_per_block', 1),
    normGroups: c.int('norm_num_groups', 32),
    scalingFactor: c.number('scaling_factor', SD_SCALING_FACTOR),
    useQuantConv: c.bool('use_quant_conv', true),
    usePostQuantConv: c.bool('use_post_quant_conv', true),
  };
  c.done('AutoencoderKL');
  return cfg;
}
