/**
 * transformers Dinov2Model / Dinov2WithRegistersModel as an ONNX graph, up to one block:
 * inputs `pixel_values` [1, 3, H, W] (ImageNet-normalised) and `position_embeddings`
 * [1, 1 + n, D] (the table interpolated to this image's patch grid, computed on the host: see
 * model/dino/positions.ts), outputs of block `layer` (0-based): `query`, `key`, `value`
 * (the attention projections), `tokens` (the block's output) and, for the last block,
 * `last_hidden_state` (after the final LayerNorm). Token order: CLS, registers, patches.
 * Pre-LN blocks with LayerScale on both residual branches; the MLP or SwiGLU feed-forward.
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { attention, gelu, layerNorm, linear, silu, type Ctx } from '../onnx/nn.ts';
import { vitEmbeddings } from '../dino/build.ts';
import type { WeightSource } from '../weights.ts';
import type { Dinov2Config } from './config.ts';

export interface Dinov2GraphOptions {
  /** Last block built (0-based). */
  layer: number;
  /** LayerNorm as two reductions (model/numerics.ts). */
  twoPassNorm?: boolean;
}

/** The state-dict prefix: none for the bare model, the model's attribute name under a head. */
export function dinov2Prefix(w: WeightSource): string {
  for (const p of ['dinov2.', 'dinov2_with_registers.']) if (w.has(`${p}embeddings.cls_token`)) return p;
  return '';
}

export function buildDinov2Graph(
  cfg: Dinov2Config,
  weights: WeightSource,
  o: Dinov2GraphOptions,
): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: weights, twoPassNorm: o.twoPassNorm };
  const d = cfg.hiddenSize;
  const p = dinov2Prefix(weights);
  let h = vitEmbeddings(ctx, p, cfg, cfg.patchSize);
  if (cfg.registers > 0) {
    // registers go in after the position embedding is added, between CLS and the patches
    const regs = weights.param(g, `${p}embeddings.register_tokens`, [1, cfg.registers, d]);
    const slice = (from: number, to: number) =>
      g.op('Slice', [h, g.constInt64([from]), g.constInt64([to]), g.constInt64([1])]); // axis 1
    const [first, tail] = [slice(0, 1), slice(1, 2 ** 62)];
    h = g.op('Concat', [first, regs, tail], { axis: 1 });
  }
  const scaled = (prefix: string, x: string) => g.op('Mul', [x, weights.param(g, `${prefix}.lambda1`, [d])]);
  for (let i = 0; i <= o.layer; i++) {
    const l = `${p}encoder.layer.${i}`;
    g.scope(`block${i}`, () => {
      const n = layerNorm(ctx, `${l}.norm1`, h, d, cfg.layerNormEps);
      const q = linear(ctx, `${l}.attention.attention.query`, n, d, d, cfg.qkvBias);
      const k = linear(ctx, `${l}.attention.attention.key`, n, d, d, cfg.qkvBias);
      const v = linear(ctx, `${l}.attention.attention.value`, n, d, d, cfg.qkvBias);
      const a = attention(g, q, k, v, cfg.heads, d / cfg.heads);
      h = g.op('Add', [scaled(`${l}.layer_scale1`, linear(ctx, `${l}.attention.output.dense`, a, d, d)), h]);
      const m = layerNorm(ctx, `${l}.norm2`, h, d, cfg.layerNormEps);
      h = g.op('Add', [scaled(`${l}.layer_scale2`, feedForward(ctx, cfg, `${l}.mlp`, m)), h]);
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

/** fc1 -> exact GELU -> fc2, or SwiGLU: weights_in, its halves as silu(x1) * x2, weights_out. */
function feedForward(ctx: Ctx, cfg: Dinov2Config, prefix: string, x: string): string {
  const { g } = ctx;
  const d = cfg.hiddenSize;
  const f = cfg.ffnHidden;
  if (!cfg.swiglu) return linear(ctx, `${prefix}.fc2`, gelu(g, linear(ctx, `${prefix}.fc1`, x, d, f)), f, d);
  const both = linear(ctx, `${prefix}.weights_in`, x, d, 2 * f);
  const [x1, x2] = g.opN('Split', [both, g.constInt64([f, f])], 2, { axis: -1 });
  return linear(ctx, `${prefix}.weights_out`, g.op('Mul', [silu(g, x1), x2]), f, d);
}
