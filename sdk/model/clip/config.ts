/** transformers CLIPTextModel config, validated for what the builder supports. */
import { ConfigReader, type RawConfig } from '../config.ts';

export const CLIP_ACTIVATIONS = ['quick_gelu', 'gelu'] as const;
export type ClipActivation = (typeof CLIP_ACTIVATIONS)[number];

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  maxPositions: number;
  /** SD-1 (OpenAI CLIP) uses quick_gelu, SD-2 (OpenCLIP) gelu. */
  activation: ClipActivation;
  layerNormEps: number;
}

/** @throws ConfigError naming every unsupported field. */
export function parseClipTextConfig(path: string, raw: RawConfig): ClipTextConfig {
  const c = new ConfigReader(path, raw);
  const arch = raw.architectures;
  if (Array.isArray(arch) && !arch.includes('CLIPTextModel')) {
    c.problems.push(`field "architectures" is ${JSON.stringify(arch)}; supported: ["CLIPTextModel"]`);
  }
  const cfg: ClipTextConfig = {
    vocabSize: c.int('vocab_size'),
    hiddenSize: c.int('hidden_size'),
    intermediateSize: c.int('intermediate_size'),
    layers: c.int('num_hidden_layers'),
    heads: c.int('num_attention_heads'),
    maxPositions: c.int('max_position_embeddings', 77),
    activation: c.oneOf('hidden_act', CLIP_ACTIVATIONS, 'quick_gelu'),
    layerNormEps: c.number('layer_norm_eps', 1e-5),
  };
  if (cfg.hiddenSize % cfg.heads)
    c.problems.push(`hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.heads}`);
  c.done('CLIPTextModel');
  return cfg;
}
