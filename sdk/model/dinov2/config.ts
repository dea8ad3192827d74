/**
 * transformers Dinov2Model / Dinov2WithRegistersModel configs (facebook/dinov2-{small,base,
 * large,giant} and their -with-registers variants), validated for what the builder supports.
 */
import { ConfigReader, type RawConfig } from '../config.ts';

export const DINOV2_MODEL_TYPES = ['dinov2', 'dinov2_with_registers'] as const;

export interface Dinov2Config {
  modelType: (typeof DINOV2_MODEL_TYPES)[number];
  hiddenSize: number;
  layers: number;
  heads: number;
  mlpRatio: number;
  patchSize: number;
  /** Training image size: the position table covers (imageSize / patchSize)^2 patches + CLS. */
  imageSize: number;
  channels: number;
  layerNormEps: number;
  qkvBias: boolean;
  /** SwiGLU feed-forward (the giant models) instead of fc1 -> GELU -> fc2. */
  swiglu: boolean;
  /** Register tokens inserted after CLS (0 for Dinov2Model). */
  registers: number;
  /** Width of the feed-forward's hidden layer, as transformers computes it from mlp_ratio. */
  ffnHidden: number;
}

/** transformers' Dinov2MLP / Dinov2SwiGLUFFN hidden widths. */
export function ffnHiddenSize(hidden: number, mlpRatio: number, swiglu: boolean): number {
  const plain = Math.trunc(hidden * mlpRatio);
  return swiglu ? Math.floor((Math.trunc((plain * 2) / 3) + 7) / 8) * 8 : plain;
}

/** @throws ConfigError naming every unsupported field. */
export function parseDinov2Config(path: string, raw: RawConfig): Dinov2Config {
  const c = new ConfigReader(path, raw);
  const modelType = c.oneOf('model_type', DINOV2_MODEL_TYPES, 'dinov2');
  c.oneOf('hidden_act', ['gelu'] as const, 'gelu');
  const swiglu = c.bool('use_swiglu_ffn', false);
  const hiddenSize = c.int('hidden_size', 768);
  const mlpRatio = c.number('mlp_ratio', 4);
  const cfg: Dinov2Config = {
    modelType,
    hiddenSize,
    layers: c.int('num_hidden_layers', 12),
    heads: c.int('num_attention_heads', 12),
    mlpRatio,
    patchSize: c.int('patch_size', 14),
    imageSize: c.int('image_size', 518),
    channels: c.int('num_channels', 3),
    layerNormEps: c.number('layer_norm_eps', 1e-6),
    qkvBias: c.bool('qkv_bias', true),
    swiglu,
    registers: modelType === 'dinov2_with_registers' ? c.int('num_register_tokens', 4) : 0,
    ffnHidden: ffnHiddenSize(hiddenSize, mlpRatio, swiglu),
  };
  if (cfg.hiddenSize % cfg.heads)
    c.problems.push(`hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.heads}`);
  if (cfg.imageSize % cfg.patchSize)
    c.problems.push(`image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`);
  if (cfg.channels !== 3) c.problems.push(`num_channels ${cfg.channels}: only RGB (3) is supported`);
  if (cfg.registers < 0) c.problems.push(`num_register_tokens ${cfg.registers} is negative`);
  c.done(modelType === 'dinov2' ? 'Dinov2Model' : 'Dinov2WithRegistersModel');
  return cfg;
}
