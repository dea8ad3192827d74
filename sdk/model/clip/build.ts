/**
 * CLIPTextModel (transformers) as an ONNX graph: token + position embeddings, pre-LN
 * transformer layers with a causal mask, final layer norm. `input_ids` [B, S] int64 ->
 * `last_hidden_state` [B, S, D]; S may be shorter than the maximum (Lotus' unpadded prompt).
 */
import { GraphBuilder } from '../onnx/graph.ts';
import { attention, gelu, layerNorm, linear, quickGelu, type Ctx } from '../onnx/nn.ts';
import type { WeightSource } from '../weights.ts';
import type { ClipTextConfig } from './config.ts';

/** Large negative instead of -inf: exp underflows to exactly 0 without NaN risk. */
const MASKED = -1e9;

export function buildClipTextGraph(
  cfg: ClipTextConfig,
  weights: WeightSource,
  options: { twoPassNorm?: boolean } = {},
): GraphBuilder {
  const g = new GraphBuilder();
  const ctx: Ctx = { g, w: weights, twoPassNorm: options.twoPassNorm };
  const d = cfg.hiddenSize;
  const p = 'text_model';
  const ids = g.input('input_ids', ['batch', 'sequence'], 'int64');
  const seqLen = g.op('Slice', [g.op('Shape', [ids]), g.constInt64([1]), g.constInt64([2])]);

  const tokens = g.op(
    'Gather',
    [weights.param(g, `${p}.embeddings.token_embedding.weight`, [cfg.vocabSize, d]), ids],
    { axis: 0 },
  );
  const positionTable = weights.param(g, `${p}.embeddings.position_embedding.weight`, [cfg.maxPositions, d]);
  const positions = g.op('Slice', [positionTable, g.constInt64([0]), seqLen, g.constInt64([0])]);
  let h = g.op('Add', [tokens, positions]);

  const causal = new Float32Array(cfg.maxPositions * cfg.maxPositions);
  for (let i = 0; i < cfg.maxPositions; i++)
    for (let j = i + 1; j < cfg.maxPositions; j++) causal[i * cfg.maxPositions + j] = MASKED;
  const fullMask = g.constFloat(causal, [cfg.maxPositions, cfg.maxPositions], 'causal_mask');
  const ends = g.op('Concat', [seqLen, seqLen], { axis: 0 });
  const mask = g.op('Slice', [fullMask, g.constInt64([0, 0]), ends, g.constInt64([0, 1])]);

  const act = cfg.activation === 'gelu' ? gelu : quickGelu;
  for (let i = 0; i < cfg.layers; i++) {
    const l = `${p}.encoder.layers.${i}`;
    g.scope(`layer${i}`, () => {
      const n = layerNorm(ctx, `${l}.layer_norm1`, h, d, cfg.layerNormEps);
      const q = linear(ctx, `${l}.self_attn.q_proj`, n, d, d);
      const k = linear(ctx, `${l}.self_attn.k_proj`, n, d, d);
      const v = linear(ctx, `${l}.self_attn.v_proj`, n, d, d);
      const a = attention(g, q, k, v, cfg.heads, d / cfg.heads, mask);
      h = g.op('Add', [h, linear(ctx, `${l}.self_attn.out_proj`, a, d, d)]);
      const m = layerNorm(ctx, `${l}.layer_norm2`, h, d, cfg.layerNormEps);
      const f = linear(
        ctx,
        `${l}.mlp.fc2`,
        act(g, linear(ctx, `${l}.mlp.fc1`, m, d, cfg.intermediateSize)),
        cfg.intermediateSize,
        d,
      );
      h = g.op('Add', [h, f]);
    });
  }
  g.output('last_hidden_state', layerNorm(ctx, `${p}.final_layer_norm`, h, d, cfg.layerNormEps), [
    'batch',
    'sequence',
    d,
  ]);
  return g;
}
