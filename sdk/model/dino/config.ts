/** transformers ViTModel config (DINO's hub checkpoints), validated for what the builder supports. */
import { ConfigReader, type RawConfig } from '../config.ts';

export interface VitConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  patchSize: number;
  /** Training image size: the position table covers (imageSize / patchSize)^2 patches + CLS. */
  imageSize: number;
  channels: number;
  layerNormEps: number;
  qkvBias: boolean;
}

/** @throws ConfigError naming every unsupported field. */
export function parseVitConfig(path: string, raw: RawConfig): VitConfig {
  const c = new ConfigReader(path, raw);
  if (raw.model_type !== undefined && raw.model_type !== 'vit')
    c.problems.push(`field "model_type" is ${JSON.stringify(raw.model_type)}; supported: "vit" (ViTModel)`);
  c.oneOf('hidden_act', ['gelu'] as const, 'gelu');
  const cfg: VitConfig = {
    hiddenSize: c.int('hidden_size'),
    layers: c.int('num_hidden_layers'),
    heads: c.int('num_attention_heads'),
    intermediateSize: c.int('intermediate_size'),
    patchSize: c.int('patch_size', 16),
    imageSize: c.int('image_size', 224),
    channels: c.int('num_channels', 3),
    layerNormEps: c.number('layer_norm_eps', 1e-12),
    qkvBias: c.bool('qkv_bias', true),
  };
  if (cfg.hiddenSize % cfg.heads)
    c.problems.push(`hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.heads}`);
  if (cfg.imageSize % cfg.patchSize)
    c.problems.push(`image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`);
  if (cfg.channels !== 3) c.problems.push(`num_channels ${cfg.channels}: only RGB (3) is supported`);
  c.done('ViTModel');
  return cfg;
}
