/** UNet2DConditionModel config (diffusers), validated for what the builder supports. */
import { ConfigReader, type RawConfig } from '../config.ts';

export const DOWN_BLOCKS = ['CrossAttnDownBlock2D', 'DownBlock2D'] as const;
export const UP_BLOCKS = ['CrossAttnUpBlock2D', 'UpBlock2D'] as const;

export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: string[];
  upBlockTypes: string[];
  layersPerBlock: number;
  /** Attention heads per down block (diffusers 0.14 reads `attention_head_dim` as the head count). */
  heads: number[];
  crossAttentionDim: number;
  normGroups: number;
  normEps: number;
  useLinearProjection: boolean;
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  convInKernel: number;
  convOutKernel: number;
  transformerLayers: number[];
  /** null, or "projection" (Lotus' task switcher: class_labels through a TimestepEmbedding). */
  classEmbedType: 'projection' | null;
  classEmbedInputDim: number;
  /** Native latent size (`sample_size`): sizes memory-saving choices in the graph, not inputs. */
  sampleSize: number;
  /**
   * `upcast_attention` (SD 2.x): attention scores in float32 when the graph is half precision.
   * Present only when true, so other checkpoints keep their graph cache keys.
   */
  upcastAttention?: true;
}

/** @throws ConfigError naming every unsupported field. */
export function parseUNetConfig(path: string, raw: RawConfig): UNetConfig {
  const c = new ConfigReader(path, raw);
  c.oneOf('_class_name', ['UNet2DConditionModel'], 'UNet2DConditionModel');
  c.oneOf('act_fn', ['silu'], 'silu');
  c.oneOf('time_embedding_type', ['positional'], 'positional');
  c.oneOf('resnet_time_scale_shift', ['default'], 'default');
  c.oneOf('mid_block_type', ['UNetMidBlock2DCrossAttn'], 'UNetMidBlock2DCrossAttn');
  for (const f of [
    'num_class_embeds',
    'time_cond_proj_dim',
    'timestep_post_act',
    'addition_embed_type',
    'encoder_hid_dim',
  ]) {
    c.oneOf(f, [null], null);
  }
  for (const f of ['only_cross_attention', 'dual_cross_attention']) c.oneOf(f, [false], false);
  const blockOutChannels = c.ints('block_out_channels');
  const n = blockOutChannels.length;
  const classEmbedType = c.oneOf('class_embed_type', [null, 'projection'], null);
  const cfg: UNetConfig = {
    inChannels: c.int('in_channels'),
    outChannels: c.int('out_channels'),
    blockOutChannels,
    downBlockTypes: c.strings('down_block_types', DOWN_BLOCKS),
    upBlockTypes: c.strings('up_block_types', UP_BLOCKS),
    layersPerBlock: c.int('layers_per_block'),
    heads: c.perBlock(raw.num_attention_heads != null ? 'num_attention_heads' : 'attention_head_dim', n, 8),
    crossAttentionDim: c.int('cross_attention_dim'),
    normGroups: c.int('norm_num_groups', 32),
    normEps: c.number('norm_eps', 1e-5),
    useLinearProjection: c.bool('use_linear_projection', false),
    centerInputSample: c.bool('center_input_sample', false),
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.number('freq_shift', 0),
    downsamplePadding: c.int('downsample_padding', 1),
    midBlockScaleFactor: c.number('mid_block_scale_factor', 1),
    convInKernel: c.int('conv_in_kernel', 3),
    convOutKernel: c.int('conv_out_kernel', 3),
    transformerLayers: c.perBlock('transformer_layers_per_block', n, 1),
    classEmbedType,
    classEmbedInputDim: classEmbedType === 'projection' ? c.int('projection_class_embeddings_input_dim') : 0,
    sampleSize: c.int('sample_size', 64),
    ...(c.bool('upcast_attention', false) ? { upcastAttention: true as const } : {}),
  };
  if (cfg.downBlockTypes.length !== n || cfg.upBlockTypes.length !== n) {
    c.problems.push(`down_block_types and up_block_types need ${n} entries (one per block_out_channels)`);
  }
  for (const [i, ch] of blockOutChannels.entries()) {
    if (ch % cfg.normGroups)
      c.problems.push(
        `block_out_channels[${i}] = ${ch} is not divisible by norm_num_groups ${cfg.normGroups}`,
      );
    if (ch % cfg.heads[i])
      c.problems.push(
        `block_out_channels[${i}] = ${ch} is not divisible by its ${cfg.heads[i]} attention heads`,
      );
  }
  c.done('UNet2DConditionModel');
  return cfg;
}

/** Number of decoder taps: every up-block resnet (layers_per_block + 1 per block). */
export function tapCount(cfg: UNetConfig): number {
  return cfg.upBlockTypes.length * (cfg.layersPerBlock + 1);
}

/** Channels of each decoder tap in layer order (up block i has the reversed block widths' i-th). */
export function tapChannels(cfg: UNetConfig): number[] {
  const reversed = [...cfg.blockOutChannels].reverse();
  return cfg.upBlockTypes.flatMap((_, i) => Array<number>(cfg.layersPerBlock + 1).fill(reversed[i]));
}
