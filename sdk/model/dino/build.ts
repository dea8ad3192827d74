/**
 * transformers ViTModel (DINO's hub checkpoints) as an ONNX graph, up to one block: inputs
 * `pixel_values` [1, 3, H, W] (ImageNet-normalised) and `position_embeddings` [1, 1 + n, D]
 * (the table interpolated to this image's patch grid, computed outside the graph), outputs of
 * block `layer` (0-based): `query`, `key`, `value` (the attention projections, [1, 1 + n, D]),
 * `tokens` (the block's output) and, when it is the last block, `last_hidden_state` (after the
 * final LayerNorm). Blocks after `layer` are not built.
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { attention, conv2d, gelu, layerNorm, linear, toTokens, type Ctx } from '../onnx/nn.ts';
import type { WeightSource } from '../weights.ts';
import type { VitConfig } from './config.ts';

export interface VitGraphOptions {
  /** Last block built (0-based). */
  layer: number;
  /** Patch embedding stride (default the patch size; smaller gives overlapping patches). */
  stride?: number;
  /** LayerNorm as two reductions (model/numerics.ts). */
  twoPassNorm?: boolean;
}

/** "vit." when the checkpoint was saved from a model with a head (ViTForImageClassification). */
export function weightPrefix(w: WeightSource): string {
  return w.has('vit.embeddings.cls_token') ? 'vit.' : '';
}

/**
 * The ViT input as DINO and DINOv2 build it: graph inputs `pixel_values` [1, 3, H, W] and
 * `position_embeddings` [1, 1 + n, D] (resized on the host), the patch convolution at `stride`,
 * CLS in front, positions added. Returns the [1, 1 + n, D] tokens.
 */
export function vitEmbeddings(
  ctx: Ctx,
  prefix: string,
  cfg: { channels: number; hiddenSize: number; patchSize: number },
  stride: number,
): string {
  const { g, w } = ctx;
  const d = cfg.hiddenSize;
  const pixels = g.input('pixel_values', [1, cfg.channels, 'height', 'width']);
  const pos = g.input('position_embeddings', [1, 'tokens', d]);
  const projection = `${prefix}embeddings.patch_embeddings.projection`;
  const patches = conv2d(ctx, projection, pixels, cfg.channels, d, cfg.patchSize, {
    stride,
    pads: [0, 0, 0, 0],
  });
  const cls = w.param(g, `${prefix}embeddings.cls_token`, [1, 1, d]);
  return g.op('Add', [g.op('Concat', [cls, toTokens(g, patches)], { axis: 1 }), pos]);
}

export function buildVitGraph(cfg: VitConfig, weights: WeightSource, o: VitGraphOptions): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: weights, twoPassNorm: o.twoPassNorm };
  const d = cfg.hiddenSize;
  const p = weightPrefix(weights);
  let h = vitEmbeddings(ctx, p, cfg, o.stride ?? cfg.patchSize);
  for (let i = 0; i <= o.layer; i++) {
    const l = `${p}encoder.layer.${i}`;
    g.scope(`block${i}`, () => {
      const n = layerNorm(ctx, `${l}.layernorm_before`, h, d, cfg.layerNormEps);
      const q = linear(ctx, `${l}.attention.attention.query`, n, d, d, cfg.qkvBias);
      const k = linear(ctx, `${l}.attention.attention.key`, n, d, d, cfg.qkvBias);
      const v = linear(ctx, `${l}.attention.attention.value`, n, d, d, cfg.qkvBias);
      const a = attention(g, q, k, v, cfg.heads, d / cfg.heads);
      h = g.op('Add', [h, linear(ctx, `${l}.attention.output.dense`, a, d, d)]);
      const m = layerNorm(ctx, `${l}.layernorm_after`, h, d, cfg.layerNormEps);
      const up = gelu(g, linear(ctx, `${l}.intermediate.dense`, m, d, cfg.intermediateSize));
      h = g.op('Add', [h, linear(ctx, `${l}.output.dense`, up, cfg.intermediateSize, d)]);
      if (i === o.layer) {
        g.output('query', q, [1, 'tokens', d]);
        g.output('key', k, [1, 'tokens', d]);
        g.output('value', v, [1, 'tokens', d]);
        g.output('tokens', h, [1, 'tokens', d]);
      }
    });
  }
  if (o.layer === cfg.layers - 1)
    g.output('last_hidden_state', layerNorm(ctx, `${p}layernorm`, h, d, cfg.layerNormEps), [1, 'tokens', d]);
  return g;
}
