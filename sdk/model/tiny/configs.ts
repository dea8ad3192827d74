/**
 * Configs of the checkpoints the generator writes: SD-1.5, SD-2.1-base and Lotus
 * topologies, at tiny widths (tests, demo) or at the real widths (benchmarks).
 */
export const TINY_STYLES = ['sd15', 'sd21', 'lotus-g', 'lotus-d', 'dino', 'dinov2'] as const;
export type TinyStyle = (typeof TINY_STYLES)[number];
export const TINY_SIZES = ['tiny', 'full'] as const;
export type TinySize = (typeof TINY_SIZES)[number];

const DOWN = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'];
const UP = ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'];
const META = { _diffusers_version: '0.14.0' };

function isSd2(style: TinyStyle): boolean {
  return style !== 'sd15';
}

export function unetConfig(style: TinyStyle, size: TinySize): Record<string, unknown> {
  const full = size === 'full';
  const sd2 = isSd2(style);
  const lotus = style.startsWith('lotus');
  return {
    _class_name: 'UNet2DConditionModel',
    ...META,
    act_fn: 'silu',
    // diffusers reads this as the number of heads (SD-1: 8 everywhere; SD-2: 64-dim heads)
    attention_head_dim: full ? (sd2 ? [5, 10, 20, 20] : 8) : sd2 ? [1, 2, 3, 3] : 2,
    block_out_channels: full ? [320, 640, 1280, 1280] : [32, 64, 96, 96],
    center_input_sample: false,
    class_embed_type: lotus ? 'projection' : null,
    projection_class_embeddings_input_dim: lotus ? 4 : null,
    cross_attention_dim: full ? (sd2 ? 1024 : 768) : 32,
    down_block_types: DOWN,
    up_block_types: UP,
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: style === 'lotus-g' ? 8 : 4,
    out_channels: 4,
    layers_per_block: 2,
    mid_block_scale_factor: 1,
    norm_eps: 1e-5,
    norm_num_groups: 32,
    sample_size: full ? (sd2 ? 96 : 64) : 32,
    use_linear_projection: sd2,
    upcast_attention: false,
  };
}

export function vaeConfig(size: TinySize): Record<string, unknown> {
  const full = size === 'full';
  return {
    _class_name: 'AutoencoderKL',
    ...META,
    act_fn: 'silu',
    block_out_channels: full ? [128, 256, 512, 512] : [32, 32, 64, 64],
    down_block_types: Array(4).fill('DownEncoderBlock2D'),
    up_block_types: Array(4).fill('UpDecoderBlock2D'),
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    layers_per_block: full ? 2 : 1,
    norm_num_groups: 32,
    sample_size: full ? 512 : 64,
    scaling_factor: 0.18215,
  };
}

export function textEncoderConfig(style: TinyStyle, size: TinySize): Record<string, unknown> {
  const full = size === 'full';
  const sd2 = isSd2(style);
  return {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    vocab_size: 49408,
    hidden_size: full ? (sd2 ? 1024 : 768) : 32,
    intermediate_size: full ? (sd2 ? 4096 : 3072) : 128,
    num_hidden_layers: full ? (sd2 ? 23 : 12) : 2,
    num_attention_heads: full ? (sd2 ? 16 : 12) : 4,
    max_position_embeddings: 77,
    hidden_act: sd2 ? 'gelu' : 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
    torch_dtype: 'float32',
  };
}

export function schedulerConfig(): Record<string, unknown> {
  return {
    _class_name: 'DDIMScheduler',
    ...META,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    num_train_timesteps: 1000,
    clip_sample: false,
    set_alpha_to_one: false,
    steps_offset: 1,
    prediction_type: 'epsilon',
  };
}

export function modelIndex(): Record<string, unknown> {
  return {
    _class_name: 'StableDiffusionPipeline',
    ...META,
    scheduler: ['diffusers', 'DDIMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
    safety_checker: [null, null],
    feature_extractor: [null, null],
    requires_safety_checker: false,
  };
}

/** SD-1 pads with <|endoftext|>, SD-2 (OpenCLIP) with "!". */
export function padToken(style: TinyStyle): string {
  return isSd2(style) ? '!' : '<|endoftext|>';
}

/** transformers ViTModel config: DINO ViT-S/8's shape at full size, a 3-block ViT when tiny. */
export function vitConfig(size: TinySize): Record<string, unknown> {
  const full = size === 'full';
  return {
    architectures: ['ViTModel'],
    model_type: 'vit',
    hidden_act: 'gelu',
    hidden_size: full ? 384 : 32,
    num_hidden_layers: full ? 12 : 3,
    num_attention_heads: full ? 6 : 2,
    intermediate_size: full ? 1536 : 64,
    patch_size: 8,
    image_size: full ? 224 : 32,
    num_channels: 3,
    layer_norm_eps: 1e-12,
    qkv_bias: true,
  };
}

export const DINOV2_VARIANTS = ['small', 'base', 'large', 'giant'] as const;
export type Dinov2Variant = (typeof DINOV2_VARIANTS)[number];
/** facebook/dinov2-*: hidden size, blocks, heads (giant: the SwiGLU feed-forward). */
const DINOV2_WIDTHS: Record<Dinov2Variant, [number, number, number]> = {
  small: [384, 12, 6],
  base: [768, 12, 12],
  large: [1024, 24, 16],
  giant: [1536, 40, 24],
};

/**
 * transformers Dinov2Model / Dinov2WithRegistersModel configs: facebook/dinov2-<variant> at
 * full size (518 px table: 37 x 37; default base), a 3-block width-32 model with a 4 x 4 table
 * when tiny.
 */
export function dinov2Config(
  size: TinySize,
  o: { registers?: boolean; swiglu?: boolean; variant?: Dinov2Variant } = {},
): Record<string, unknown> {
  const full = size === 'full';
  const [width, blocks, heads] = DINOV2_WIDTHS[o.variant ?? 'base'];
  return {
    architectures: [o.registers ? 'Dinov2WithRegistersModel' : 'Dinov2Model'],
    model_type: o.registers ? 'dinov2_with_registers' : 'dinov2',
    hidden_act: 'gelu',
    hidden_size: full ? width : 32,
    num_hidden_layers: full ? blocks : 3,
    num_attention_heads: full ? heads : 2,
    mlp_ratio: 4,
    patch_size: 14,
    image_size: full ? 518 : 56,
    num_channels: 3,
    layer_norm_eps: 1e-6,
    layerscale_value: 1.0,
    qkv_bias: true,
    use_swiglu_ffn: o.swiglu ?? (full && o.variant === 'giant'),
    ...(o.registers ? { num_register_tokens: 4 } : {}),
  };
}
